"""Trending: items by their interactions in a recent window, the window chosen on validation.

A practitioner's first prior for a user with no history besides all-time popularity: what sells
now. The window is chosen on the fit's validation rows (each user's last training interactions,
carved from the training period): for each candidate window, items are ranked by their training
interactions in the window ending at the last training time (all-time counts break ties), and the
window whose lists recall the validation rows best wins (ties: the longer window). Without
timestamps it is popularity, and says so in :meth:`chosen`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.metrics import recall_at
from hybrid.models.base import FitData, Recommender, register

logger = logging.getLogger(__name__)

DAY = 86_400
LIST_CELLS = 1 << 24  # list_recall's mask entries at once (16 MB)


@dataclass
class TrendingConfig:
    # Candidate windows in days, ending at the last training time; the validation chooses one.
    windows_days: list[float] = field(default_factory=lambda: [1, 3, 7, 14, 30, 90, 365])
    k: int = 20  # the validation's cut-off

    def __post_init__(self) -> None:
        if not self.windows_days or any(w <= 0 for w in self.windows_days):
            raise ValueError(f"windows_days must be positive numbers of days, got {self.windows_days!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


def window_counts(times: np.ndarray, items: np.ndarray, n_items: int, since: float) -> np.ndarray:
    """float64 [n_items]: interactions at or after ``since`` per item."""
    recent = times >= since
    return np.bincount(items[recent], minlength=n_items).astype(np.float64)


def list_recall(order: np.ndarray, seen: sp.csr_matrix, truth: sp.csr_matrix, k: int) -> float:
    """Mean Recall@k (:func:`~hybrid.metrics.recall_at`, not rounded) over the rows of ``truth``
    that hold an item, when every user gets the global ``order`` without their ``seen`` items."""
    rows = np.flatnonzero(np.diff(truth.indptr) > 0)
    if not len(rows):
        return 0.0
    head = order[: k + int(np.diff(seen.indptr).max(initial=0))]
    top = np.full((len(rows), k), -1, np.int64)  # -1: a list shorter than k (a small catalogue)
    step = max(1, LIST_CELLS // max(len(head), 1))  # rows at once: a [step, len(head)] mask
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        keep = ~(seen[part][:, head] > 0).toarray()  # the head items each user has not seen
        keep &= np.cumsum(keep, axis=1) <= k
        first = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept ones, in the head's order
        top[start:start + len(part), :first.shape[1]] = np.where(np.take_along_axis(keep, first, 1), head[first], -1)
    return recall_at(top, truth[rows], digits=None, padded=True)


class Trending(Recommender):
    """Scores = interactions in the chosen recent window, plus all-time counts scaled below one
    recent interaction (so items outside the window are still ranked by popularity)."""

    zero_history_prior = True

    def __init__(self, config: TrendingConfig | None = None) -> None:
        self.config = config or TrendingConfig()

    def fit(self, data: FitData) -> Self:
        train = data.train
        total = train.item_counts().astype(np.float64)
        known = total if data.valid is None else total + data.valid.item_counts()  # popularity's counts
        self.window_days_: float | None = None
        self.validation_: dict[str, float] = {}
        if train.timestamps is None or data.valid is None or data.valid.timestamps is None:
            logger.info("trending: no timestamps or no validation rows; it ranks by all-time popularity")
            scores = known
        else:
            end = float(train.timestamps.max())
            seen, truth = train.matrix(), data.valid.matrix()
            tie = total / (total.max() + 1.0)
            best = (-1.0, 0.0)
            for days in sorted(self.config.windows_days):
                counts = window_counts(train.timestamps, train.items, train.n_items, end - days * DAY) + tie
                recall = list_recall(np.argsort(-counts, kind="stable"), seen, truth, self.config.k)
                self.validation_[f"{days:g}d"] = round(recall, 6)
                if recall >= best[0]:
                    best = (recall, days)
            self.window_days_ = best[1]
            # The final counts read validation rows too: they are training data, and the latest of it.
            times, items = np.r_[train.timestamps, data.valid.timestamps], np.r_[train.items, data.valid.items]
            scores = window_counts(times, items, train.n_items, float(times.max()) - best[1] * DAY) \
                + known / (known.max() + 1.0)
            logger.info("trending: window %g days (validation Recall@%d %.4f)", best[1], self.config.k, best[0])
        self.scores_ = torch.as_tensor(scores.astype(np.float32), device=data.device)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.scores_.expand(len(users), -1).clone()

    def chosen(self) -> dict[str, Any]:
        return {"window_days": self.window_days_, "validation_recall": self.validation_}


@register("trending")
def _trending(params: dict[str, Any]) -> Recommender:
    return Trending(from_dict(TrendingConfig, params, "trending"))
