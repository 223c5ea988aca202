"""Text that users write (tags, reviews) is an interaction: it reaches item text only from the fit's
training period.

Joining every tag of a data set into item text hands the test period to every model that reads
text: on ml-latest-small 1,235 of the 1,240 tags written after its temporal cut are exactly test
(user, film) pairs, and a held-out film of a cold-item split carries the tags of its own test
users. Here a written row counts for a fit when its (user, item) pair is one of the fit's known
interactions (train + validation), or when it has no interaction of its own at all (a tag on a
film the user never rated) but was written by a known user about a known item; on a split by time
it must also be written before the cut (a tag written later on a film rated earlier is news from
the test period).
"""

from __future__ import annotations

import logging

import pandas as pd

from hybrid.data.interactions import ITEM, TIMESTAMP, USER

logger = logging.getLogger(__name__)

TEXT = "text"


def _pairs(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame[USER].to_numpy(), frame[ITEM].to_numpy()])


def known_written(written: pd.DataFrame, known: pd.DataFrame, every: pd.DataFrame, cut: int | None) -> pd.DataFrame:
    """The rows of ``written`` a fit may read.

    Args:
        written: user, item, text (and timestamp where the source has times).
        known: the fit's training interactions (train + validation: user, item).
        every: every interaction of the data set (to tell a tag on an interaction from one without).
        cut: the split's time (Unix seconds): every row must be written before it. None for a
            split without a time (then the known pairs, users and items decide).
    """
    pairs = _pairs(written)
    on_known = pairs.isin(_pairs(known))
    without = ~pairs.isin(_pairs(every))
    allowed = without & written[USER].isin(known[USER]).to_numpy() & written[ITEM].isin(known[ITEM]).to_numpy()
    if cut is not None and TIMESTAMP in written.columns:  # a tag written after the cut is of the test period
        before = (written[TIMESTAMP] < cut).to_numpy()
        on_known, allowed = on_known & before, allowed & before
    kept = written[on_known | allowed]
    logger.info("user-written text: %d of %d rows are of the training period (%d on its interactions, %d "
                "without one); %d rows of the test period or of held-out pairs are left out",
                len(kept), len(written), int(on_known.sum()), int(allowed.sum()), len(written) - len(kept))
    return kept


def with_written(item_text: pd.Series, written: pd.DataFrame, label: str) -> pd.Series:
    """``item_text`` with "<label>: a, b" appended from ``written`` (each text once, lower-cased,
    most written first, then alphabetical); items without written rows keep their text."""
    if len(written) == 0:
        return item_text
    counts = written.assign(**{TEXT: written[TEXT].astype(str).str.strip().str.lower()})
    counts = counts[counts[TEXT] != ""].groupby([ITEM, TEXT]).size().rename("n").reset_index()
    counts = counts.sort_values([ITEM, "n", TEXT], ascending=[True, False, True])
    joined = counts.groupby(ITEM)[TEXT].agg(", ".join)
    out = item_text.copy()
    has = out.index.isin(joined.index)
    out[has] = out[has] + f". {label}: " + joined.reindex(out.index[has]).to_numpy()
    return out
