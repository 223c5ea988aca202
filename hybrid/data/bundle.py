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
            (int Unix seconds) and ``weight``; a source with only an order and no times has
            ``order`` (each user's sequence position) instead of ``timestamp``: an order is not a
            time, so nothing rehearses or splits "by time" on it.
        item_text: index = item id (dtype of ``interactions["item"]``), value = text to encode.
        item_titles: index = item id, a short human title for prompts and display.
        user_text: index = user id, a side-information sentence, or None when there is none.
        test: a test set shipped with the data (``user``, ``item``), or None.
        written: text that users wrote about items (MovieLens tags, reviews): columns ``user``,
            ``item``, ``text`` and ``timestamp`` where the source has times. It is an interaction,
            not item text: a fit's item text gets it only from that fit's training period
            (:mod:`hybrid.data.written`); ``written_label`` introduces it there ("Tags: ...").
        independent_catalogue: whether the item table lists items independently of the
            interactions (Amazon metadata: bought and unbought products alike). A table derived
            from the interactions (MovieLens lists only rated films, Online Retail only products
            that sold) holds an item from its first interaction on, so on a split by time an item
            first seen after the cut is not in the catalogue at the cut.
    """

    name: str
    interactions: pd.DataFrame
    item_text: pd.Series
    item_titles: pd.Series
    user_text: pd.Series | None = None
    test: pd.DataFrame | None = None
    written: pd.DataFrame | None = None
    written_label: str = "Tags"
    independent_catalogue: bool = False


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
