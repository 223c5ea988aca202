"""The files a run writes beside results.json, from which every metric can be recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.interactions import ITEM, USER
from hybrid.evaluation.prepare import Prepared, known_counts


def write_rankings(prepared: Prepared, top: np.ndarray, scores: np.ndarray, path: Path) -> None:
    """user, rank, item, score of each evaluated user's list; -1 entries (no item) are left out."""
    train = prepared.fit_data.train
    scores = np.pad(scores, ((0, 0), (0, top.shape[1] - scores.shape[1])), constant_values=-np.inf)
    keep = (top >= 0).ravel()
    pd.DataFrame({
        USER: np.repeat(train.user_ids[prepared.users], top.shape[1])[keep],
        "rank": np.tile(np.arange(1, top.shape[1] + 1), len(prepared.users))[keep],
        ITEM: train.item_ids[top.ravel()[keep]],
        "score": scores.ravel()[keep],
    }).to_csv(path, index=False)


def write_evidence(prepared: Prepared, out: Path) -> None:
    """The files that let anyone recompute every metric without this package."""
    train = prepared.fit_data.train
    test = prepared.test[prepared.users].tocoo()
    pd.DataFrame({USER: train.user_ids[prepared.users[test.row]], ITEM: train.item_ids[test.col]}).to_csv(
        out / "test.csv", index=False
    )
    known = prepared.history[prepared.users].tocoo()
    pd.DataFrame({USER: train.user_ids[prepared.users[known.row]], ITEM: train.item_ids[known.col]}).to_csv(
        out / "known_items.csv", index=False
    )
    counts = known_counts(prepared.fit_data, "item")
    pd.DataFrame({ITEM: train.item_ids, "train_count": counts, "cold": counts == 0}).to_csv(
        out / "items.csv", index=False
    )
    pd.DataFrame({
        USER: train.user_ids[prepared.users],
        "cold": np.isin(train.user_ids[prepared.users], list(prepared.split.cold_users)),
    }).to_csv(out / "users.csv", index=False)
