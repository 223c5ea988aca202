"""The data layer: one object owns the id maps, the interaction matrix and the counts.

Raw ids live at the public boundary; everything inside the package works on contiguous
integer indices. :class:`Interactions` is the one place that converts between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybrid.data.parsing import (
    check_ids,
    first_bad_row,
    make_index,
    parse_timestamps,
    parse_weights,
)

logger = logging.getLogger(__name__)

USER, ITEM, TIMESTAMP, WEIGHT = "user", "item", "timestamp", "weight"
# A source with an order but no times (sequence positions): splits may take "last" by it, nothing
# takes it for a time, and Interactions does not carry it.
ORDER = "order"


@dataclass(frozen=True)
class Columns:
    """Names of the columns to read from the caller's table."""

    user: str = USER
    item: str = ITEM
    timestamp: str | None = TIMESTAMP
    weight: str | None = WEIGHT


class Interactions:
    """User-item interactions with their id maps, as a CSR matrix plus aligned per-edge arrays.

    Duplicate (user, item) rows are merged: weights summed, earliest timestamp kept.

    Attributes:
        user_ids / item_ids: raw ids, position = internal index.
        users / items: int64 [nnz] internal indices of each interaction, sorted by (user, item).
        weights: float32 [nnz]; 1.0 when no weight column was given.
        timestamps: int64 [nnz] Unix seconds, or None when the data has no time.
    """

    def __init__(
        self,
        user_ids: pd.Index,
        item_ids: pd.Index,
        users: np.ndarray,
        items: np.ndarray,
        weights: np.ndarray,
        timestamps: np.ndarray | None,
    ) -> None:
        self.user_ids = user_ids
        self.item_ids = item_ids
        order = np.lexsort((items, users))
        self.users = users[order].astype(np.int64)
        self.items = items[order].astype(np.int64)
        self.weights = weights[order].astype(np.float32)
        self.timestamps = None if timestamps is None else timestamps[order].astype(np.int64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Columns = Columns(),
        user_ids: Iterable[Any] | None = None,
        item_ids: Iterable[Any] | None = None,
    ) -> Interactions:
        """Validate and index a table of interactions.

        Args:
            frame: one row per interaction.
            columns: which columns hold user, item, and (optionally) timestamp and weight.
                A timestamp/weight column named in ``columns`` but absent is an error only when
                it was set explicitly away from the default name.
            user_ids / item_ids: the full id universe, e.g. to keep cold items that have no
                training rows. Ids in ``frame`` outside the universe raise an error.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"interactions must be a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise ValueError("interactions are empty (0 rows); nothing to fit or evaluate")
        for role, column in (("user", columns.user), ("item", columns.item)):
            if column not in frame.columns:
                raise ValueError(f"{role} column {column!r} not found; columns are {list(frame.columns)}")
        ts_col = _optional_column(frame, columns.timestamp, TIMESTAMP, "timestamp")
        w_col = _optional_column(frame, columns.weight, WEIGHT, "weight")
        frame = frame.reset_index(drop=True)
        users_raw = check_ids(frame, columns.user)
        items_raw = check_ids(frame, columns.item)
        timestamps = None if ts_col is None else parse_timestamps(frame[ts_col], ts_col)
        weights = np.ones(len(frame), np.float32) if w_col is None else parse_weights(frame[w_col], w_col)

        user_index = _universe(users_raw, user_ids, "user", columns.user)
        item_index = _universe(items_raw, item_ids, "item", columns.item)
        users = user_index.get_indexer(users_raw)
        items = item_index.get_indexer(items_raw)
        users, items, weights, timestamps = _merge_duplicates(users, items, weights, timestamps)
        if not np.isfinite(weights).all():
            raise ValueError(f"column {columns.weight!r}: the weights of a duplicated (user, item) pair sum past float32's range")
        return cls(user_index, item_index, users, items, weights, timestamps)

    @classmethod
    def from_path(cls, path: str | Path, columns: Columns = Columns(), **kwargs: Any) -> Interactions:
        """Read a CSV (any compression pandas infers) or Parquet file."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"interactions file {path} does not exist")
        suffixes = "".join(path.suffixes).lower()
        frame = pd.read_parquet(path) if ".parquet" in suffixes or ".pq" in suffixes else pd.read_csv(path)
        return cls.from_frame(frame, columns, **kwargs)

    @classmethod
    def from_dataset(cls, dataset: Any, columns: Columns = Columns(), **kwargs: Any) -> Interactions:
        """Build from a Hugging Face ``datasets.Dataset``."""
        return cls.from_frame(dataset.to_pandas(), columns, **kwargs)

    @classmethod
    def build(cls, source: Any, columns: Columns = Columns(), **kwargs: Any) -> Interactions:
        """Dispatch on the source type: Interactions, DataFrame, path, or ``datasets.Dataset``."""
        if isinstance(source, Interactions):
            return source
        if isinstance(source, pd.DataFrame):
            return cls.from_frame(source, columns, **kwargs)
        if isinstance(source, str | Path):
            return cls.from_path(source, columns, **kwargs)
        if hasattr(source, "to_pandas") and hasattr(source, "column_names"):
            return cls.from_dataset(source, columns, **kwargs)
        raise TypeError(
            "interactions must be a DataFrame, a CSV/Parquet path or a datasets.Dataset, "
            f"got {type(source).__name__}"
        )

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        return f"Interactions({self.n_users} users, {self.n_items} items, {len(self)} interactions)"

    @property
    def has_time(self) -> bool:
        return self.timestamps is not None

    def matrix(self, binary: bool = True) -> sp.csr_matrix:
        """Users x items CSR matrix (float32); ones when ``binary`` else summed weights."""
        data = np.ones(len(self), np.float32) if binary else self.weights
        return sp.csr_matrix((data, (self.users, self.items)), shape=(self.n_users, self.n_items))

    def item_counts(self) -> np.ndarray:
        """int64 [n_items]: distinct users per item."""
        return np.bincount(self.items, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        """int64 [n_users]: distinct items per user."""
        return np.bincount(self.users, minlength=self.n_users)

    def to_frame(self) -> pd.DataFrame:
        """Canonical table with raw ids: user, item, weight, and timestamp when known."""
        frame = pd.DataFrame(
            {USER: self.user_ids[self.users], ITEM: self.item_ids[self.items], WEIGHT: self.weights}
        )
        if self.timestamps is not None:
            frame[TIMESTAMP] = self.timestamps
        return frame

    # ------------------------------------------------------------------ id conversion
    def user_index(self, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Raw user ids -> internal indices; unknown ids raise ``KeyError`` naming them."""
        return lookup_ids(self.user_ids, ids, "user")

    def item_index(self, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Raw item ids -> internal indices; unknown ids raise ``KeyError`` naming them."""
        return lookup_ids(self.item_ids, ids, "item")


def merged(train: Interactions, valid: Interactions | None) -> Interactions:
    """``train`` and ``valid`` as one :class:`Interactions` (same id universe)."""
    if valid is None or len(valid) == 0:
        return train
    times = None if train.timestamps is None or valid.timestamps is None else np.r_[train.timestamps, valid.timestamps]
    return Interactions(train.user_ids, train.item_ids, np.r_[train.users, valid.users], np.r_[train.items, valid.items],
                        np.r_[train.weights, valid.weights], times)


def _optional_column(frame: pd.DataFrame, name: str | None, default: str, role: str) -> str | None:
    if name is None:
        return None
    if name in frame.columns:
        return name
    if name == default:
        return None
    raise ValueError(f"{role} column {name!r} not found; columns are {list(frame.columns)}")


def _universe(values: pd.Series, declared: Iterable[Any] | None, role: str, column: str) -> pd.Index:
    if declared is None:
        return pd.Index(pd.unique(values))
    index = make_index(declared, role)
    missing = index.get_indexer(values) < 0
    if missing.any():
        row = first_bad_row(missing)
        raise ValueError(
            f"column {column!r} has {role} id {values.iloc[row]!r} at row {row} that is not in the declared {role} ids"
        )
    return index


def _merge_duplicates(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, timestamps: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Merge repeated (user, item) pairs: weights summed, earliest timestamp kept; logs the count."""
    n_items = int(items.max()) + 1
    keys = users.astype(np.int64) * n_items + items
    unique, inverse = np.unique(keys, return_inverse=True)
    merged = len(keys) - len(unique)
    if merged == 0:
        return users, items, weights, timestamps
    logger.info("merged %d duplicate (user, item) rows: weights summed, earliest timestamp kept", merged)
    summed = np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.float32)
    first_ts = None
    if timestamps is not None:
        first_ts = np.full(len(unique), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first_ts, inverse, timestamps)
    return unique // n_items, unique % n_items, summed, first_ts


class BadInputError(ValueError):
    """An argument value the caller passed that the library refuses (an empty list, a blank text,
    a ``k`` out of range): a ``ValueError``, told apart from the library's own faults (also
    ``ValueError`` at times) so that a server answers 400 for it and 500 for those."""


class UnknownIdError(KeyError, ValueError):
    """Ids the model was not fitted on: a ``KeyError`` (a lookup that failed) and a ``ValueError``
    (bad input), so either ``except`` catches it. The message names the ids."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def lookup_ids(index: pd.Index, ids: Sequence[Any] | np.ndarray, role: str) -> np.ndarray:
    """Raw ids -> positions in ``index``; unknown ids raise :class:`UnknownIdError` naming them."""
    ids = pd.Index(list(ids) if not isinstance(ids, pd.Index) else ids, dtype=object if len(ids) == 0 else None)
    positions = index.get_indexer(ids)
    if (positions < 0).any():
        unknown = [ids[i] for i in np.flatnonzero(positions < 0)[:5]]
        raise UnknownIdError(f"unknown {role} ids {unknown} ({int((positions < 0).sum())} in all); "
                             "they were not in the fitted data")
    return positions.astype(np.int64)


def item_texts(
    item_text: Mapping[Any, str] | pd.Series | pd.DataFrame,
    item_ids: pd.Index,
    text_columns: Sequence[str] | None = None,
    template: str | None = None,
    id_column: str | None = None,
) -> list[str]:
    """Align item text to ``item_ids``; a DataFrame's ``text_columns`` are joined by ``template``.

    Args:
        item_text: mapping or Series (id -> text), or a DataFrame indexed by id (or with ``id_column``).
        item_ids: the id order to return.
        text_columns: DataFrame columns to use (default: all non-id columns).
        template: ``str.format`` template over the columns, e.g. ``"{title}. Genres: {genres}"``;
            default joins the non-empty columns with ". ".

    Returns:
        One string per item id; items without text get "" and are reported in the log.
    """
    if isinstance(item_text, pd.DataFrame):
        frame = item_text.set_index(id_column) if id_column else item_text
        columns = list(text_columns or frame.columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"text column(s) {missing} not found; columns are {list(frame.columns)}")
        filled = frame[columns].fillna("").astype(str)
        if template is None:
            series = filled.apply(lambda row: ". ".join(v.strip() for v in row if v.strip()), axis=1)
        else:
            series = filled.apply(lambda row: template.format(**row.to_dict()), axis=1)
    elif isinstance(item_text, pd.Series):
        series = item_text.fillna("").astype(str)
    elif isinstance(item_text, Mapping):
        series = pd.Series(dict(item_text), dtype=object).fillna("").astype(str)
    else:
        raise TypeError(f"item_text must be a mapping, Series or DataFrame, got {type(item_text).__name__}")
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise ValueError(f"item_text has item id {dup!r} more than once")
    series.index = coerce_ids_like(series.index, item_ids)
    texts = series.reindex(item_ids).fillna("").astype(str).str.strip()
    empty = texts.index[texts.eq("").to_numpy()]
    if len(empty):
        logger.warning(
            "%d of %d items have no text (e.g. %s); they get no content signal",
            len(empty), len(item_ids), list(empty[:5]),
        )
    return texts.tolist()


def coerce_ids_like(ids: pd.Index, like: pd.Index) -> pd.Index:
    """``ids`` spelt as ``like``'s ids: strings ("1") cast to the type of ``like``'s non-string ids
    (1), integers (1) written as strings ("1") where ``like``'s ids are strings; so text keyed by
    strings, a table read as numbers, or ids from JSON still find the interaction ids."""
    if not len(ids) or not len(like):
        return ids
    if isinstance(like[0], str):
        if any(_is_integer(i) for i in ids):
            return pd.Index([str(i) if _is_integer(i) else i for i in ids])
        return ids
    if any(isinstance(i, str) for i in ids):
        return pd.Index([_coerce_like(i, like[0]) for i in ids])
    return ids


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _coerce_like(value: Any, example: Any) -> Any:
    try:
        return type(example)(value)
    except (TypeError, ValueError):
        return value
