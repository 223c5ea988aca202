"""Reading the columns of a caller's interaction table: ids, timestamps, weights.

Every bad value raises a ``ValueError`` naming the column, the row and the value, so the caller
sees what to fix before anything is built.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger("hybrid.data.interactions")  # the records users already filter on


def shown(value: Any) -> Any:
    """A value as a user wrote it (2.5, not np.float64(2.5)), for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def first_bad_row(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def check_ids(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    null = values.isna().to_numpy()
    if null.any():
        row = first_bad_row(null)
        raise ValueError(f"column {column!r} has a null id at row {row}; every interaction needs a {column}")
    if pd.api.types.is_float_dtype(values):
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            row = first_bad_row(np.mod(values.to_numpy(), 1) != 0)
            raise ValueError(f"column {column!r} has a non-integer numeric id {shown(values.iloc[row])!r} at row {row}")
        values = values.astype(np.int64)
    elif not pd.api.types.is_integer_dtype(values):
        kinds = values.map(lambda v: "number" if isinstance(v, int | float | np.number) and not isinstance(v, bool)
                           else type(v).__name__)
        if kinds.nunique() > 1:
            first = kinds.iloc[0]
            row = first_bad_row(kinds != first)
            raise ValueError(
                f"column {column!r} mixes id types: {values.iloc[0]!r} ({first}) at row 0 and {values.iloc[row]!r} "
                f"({kinds.iloc[row]}) at row {row}; 1 and '1' would be one id or two: convert the column to one type"
            )
        values = values.astype(str)
        blank = (values.str.strip() == "").to_numpy()
        if blank.any():
            raise ValueError(f"column {column!r} has an empty id at row {first_bad_row(blank)}")
    return values


def parse_timestamps(values: pd.Series, column: str) -> np.ndarray:
    """Timestamps as int64 Unix seconds; numbers are taken as seconds, strings and datetimes parsed."""
    null = values.isna().to_numpy()
    if null.any():
        row = first_bad_row(null)
        raise ValueError(f"column {column!r} has a missing timestamp at row {row}")
    if pd.api.types.is_datetime64_any_dtype(values):
        return unix_seconds(pd.to_datetime(values, utc=True))
    if pd.api.types.is_bool_dtype(values):
        raise ValueError(f"column {column!r} holds booleans, not timestamps (row 0: {values.iloc[0]!r})")
    if pd.api.types.is_numeric_dtype(values):
        return numeric_seconds(values.to_numpy(), column)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric_seconds(numeric.to_numpy(), column)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = first_bad_row(bad)
        raise ValueError(
            f"column {column!r} has an unparseable timestamp {values.iloc[row]!r} at row {row}; "
            "give Unix seconds or an ISO 8601 date"
        )
    return unix_seconds(parsed)


# Unix times in milli-, micro- and nanoseconds are above these (in seconds they would be past the
# year 5000); they are converted to seconds, and the log says so.
SUBSECOND_UNITS = ((1e17, 1e9, "nanoseconds"), (1e14, 1e6, "microseconds"), (1e11, 1e3, "milliseconds"))


def numeric_seconds(values: np.ndarray, column: str) -> np.ndarray:
    """Numeric timestamps as int64 Unix seconds: a finer unit is detected by magnitude and
    converted, fractional seconds are floored; both are logged, never silent."""
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        row = first_bad_row(~np.isfinite(values))
        raise ValueError(f"column {column!r} has a non-finite timestamp {shown(values[row])!r} at row {row}")
    largest = np.abs(values).max() if len(values) else 0.0
    for bound, per_second, unit in SUBSECOND_UNITS:
        if largest >= bound:
            logger.warning("column %r: timestamps up to %.0f look like Unix %s; converted to seconds",
                           column, largest, unit)
            values = values / per_second
            break
    fractional = int((np.mod(values, 1) != 0).sum())
    if fractional:
        logger.info("column %r: %d timestamps have fractions of a second, floored to whole seconds "
                    "(order within a second is kept by row order)", column, fractional)
    return np.floor(values).astype(np.int64)


def unix_seconds(parsed: pd.Series) -> np.ndarray:
    # Independent of the datetime unit (pandas 3 may keep seconds or microseconds).
    epoch = pd.Timestamp(0, tz="UTC")
    return ((parsed - epoch) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def parse_weights(values: pd.Series, column: str) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row = first_bad_row(bad)
        raise ValueError(f"column {column!r} has a non-numeric or missing weight {shown(values.iloc[row])!r} at row {row}")
    weights = numeric.to_numpy(np.float64)
    if not np.isfinite(weights).all():
        row = first_bad_row(~np.isfinite(weights))
        raise ValueError(f"column {column!r} has a non-finite weight {float(weights[row])!r} at row {row}")
    too_large = np.abs(weights) > np.finfo(np.float32).max
    if too_large.any():
        row = first_bad_row(too_large)
        raise ValueError(f"column {column!r} has a weight {float(weights[row])!r} at row {row} too large for float32")
    if (weights < 0).any():
        row = first_bad_row(weights < 0)
        raise ValueError(f"column {column!r} has a negative weight {float(weights[row])!r} at row {row}; weights must be >= 0")
    return weights.astype(np.float32)


def make_index(ids: Iterable[Any], name: str) -> pd.Index:
    index = pd.Index(list(ids) if not isinstance(ids, pd.Index | np.ndarray) else ids)
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise ValueError(f"{name} ids must be unique; {dup!r} appears more than once")
    return index
