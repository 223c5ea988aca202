"""What a model may know at fit time: the whole catalogue and the training period's filters.

An evaluation that builds its item universe from the test rows tells every model which new items
will sell (each has a test buyer), and a k-core over the whole period keeps only new items that
sold well. A deployment knows neither. Here the catalogue is every item of the data set (its item
table, bought or not, and every item of its interactions) and every user of the data; filters
such as k-core see the training side of a split only, so a new item that sells once, or never,
stays a new item of the catalogue.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from hybrid.config import DataConfig
from hybrid.data.interactions import ITEM, TIMESTAMP, USER
from hybrid.data.splits import Split

logger = logging.getLogger(__name__)


def catalogue_ids(frame: pd.DataFrame, item_table: pd.Index, user_table: pd.Index | None) -> tuple[pd.Index, pd.Index]:
    """(user ids, item ids): the data set's every user and item, never derived from a split.

    Args:
        frame: every interaction of the data set (any period).
        item_table: ids of the item table (item text), bought or not.
        user_table: ids of the user side-information table, or None.
    """
    users = [pd.Series(np.asarray(user_table)), pd.Series(frame[USER].to_numpy())] if user_table is not None \
        else [pd.Series(frame[USER].to_numpy())]
    items = [pd.Series(np.asarray(item_table)), pd.Series(frame[ITEM].to_numpy())]
    user_ids = pd.Index(pd.unique(pd.concat(users, ignore_index=True)))
    item_ids = pd.Index(pd.unique(pd.concat(items, ignore_index=True)))
    unbought = int((~item_ids.isin(frame[ITEM])).sum())
    if unbought:
        logger.info("catalogue: %d items, %d of them with no interaction at all (they join as new items)",
                    len(item_ids), unbought)
    return user_ids, item_ids


def catalogue_at(item_ids: pd.Index, every: pd.DataFrame, cut: int) -> pd.Index:
    """The items of ``item_ids`` listed at time ``cut`` when the item table is derived from the
    interactions: those with a first interaction (by anyone, ``every``) before the cut."""
    first = every.groupby(ITEM)[TIMESTAMP].min()
    listed = item_ids[item_ids.isin(first.index[first.to_numpy() < cut])]
    logger.info("catalogue at the cut: %d of %d items (the item table is derived from the interactions; "
                "the other %d are first seen from the cut on)", len(listed), len(item_ids), len(item_ids) - len(listed))
    return listed


def filter_ratings(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """``data.min_rating``: what counts as an interaction (a definition, applied to every period)."""
    if data.min_rating is None:
        return frame
    kept = frame[frame["weight"] >= data.min_rating]
    logger.info("min_rating %.1f: kept %d of %d interactions", data.min_rating, len(kept), len(frame))
    return kept


def k_core(frame: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Rows of users with ≥ ``min_user`` and items with ≥ ``min_item`` rows, repeated until stable."""
    while min_user or min_item:
        users = frame.groupby(USER)[ITEM].transform("size") >= min_user
        items = frame.groupby(ITEM)[USER].transform("size") >= min_item
        keep = users & items
        if keep.all():
            break
        frame = frame[keep]
    return frame


def filter_training(split: Split, data: DataConfig) -> Split:
    """``split`` with ``data``'s k-core applied to its training side (train and validation) only;
    the test rows, and the catalogue, are untouched. Logs what it removes."""
    if not (data.min_user_interactions or data.min_item_interactions):
        return split
    marked = pd.concat([split.train.assign(_part="train"), split.valid.assign(_part="valid")])
    kept = k_core(marked, data.min_user_interactions, data.min_item_interactions)
    logger.info("k-core (users %d, items %d) on the training period: removed %d of %d training interactions",
                data.min_user_interactions, data.min_item_interactions, len(marked) - len(kept), len(marked))
    parts: dict[str, Any] = {name: kept[kept["_part"] == name].drop(columns="_part").reset_index(drop=True)
                             for name in ("train", "valid")}
    known = set(parts["train"][ITEM]) | set(parts["valid"][ITEM])
    users = set(parts["train"][USER]) | set(parts["valid"][USER])
    return dataclasses.replace(
        split, **parts, cold_items=frozenset(set(split.test[ITEM]) - known),
        cold_users=split.cold_users | frozenset(set(split.test[USER]) - users),
    )
