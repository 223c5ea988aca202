"""What every data set loader returns (:class:`DataBundle`), and the helpers the loaders share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


DATA_ROOT_ENV = "HYBRID_DATA_ROOT"


@dataclass
class DataBundle:
    """One data set, ready for :class:`~hybrid.data.interactions.Interactions` and the text encoders.

    Attributes:
        name: the registry name.
        interactions: columns ``user``, ``item`` and, where the source has them, ``timestamp``
            (int Unix seconds, or order positions where noted) and ``weight``.
        item_text: index = item id (dtype of ``interactions["item"]``), value = text to encode.
        item_titles: index = item id, a short human title for prompts and display.
        user_text: index = user id, a side-information sentence, or None when there is none.
        test: a test set shipped with the data (``user``, ``item``), or None.
    """

    name: str
    interactions: pd.DataFrame
    item_text: pd.Series
    item_titles: pd.Series
    user_text: pd.Series | None = None
    test: pd.DataFrame | None = None


def int_column(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    """``frame[column]`` as int64, or a ValueError naming the file, column and line."""
    numeric = pd.to_numeric(frame[column], errors="coerce")
    bad = numeric.isna() | (numeric != numeric.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{file}: column {column!r} holds {frame[column].iloc[row]!r} on line {frame['line'].iloc[row]}; "
            "expected an integer"
        )
    return numeric.astype("int64")


def logged(bundle: DataBundle) -> DataBundle:
    frame = bundle.interactions
    logger.info(
        "loaded %s: %d interactions, %d users, %d items (%d with text)%s",
        bundle.name, len(frame), frame["user"].nunique(), frame["item"].nunique(),
        int(bundle.item_text.ne("").sum()),
        "" if bundle.test is None else f", {len(bundle.test)} predefined test pairs",
    )
    return bundle


def existing_dir(path: str | Path, expected: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected the {expected} data set folder")
    return folder
