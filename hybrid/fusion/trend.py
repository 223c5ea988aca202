"""Trending: what sells now, as a signal of the gates and a prior for zero-history users.

Popularity counts every interaction since the data began; what a user buys next leans towards what
others bought lately (films on release, this season's products). ``recent_counts`` counts each
item's interactions in the last ``window`` days of a state; the window is chosen once per fit on
the rehearsal (:func:`choose_window`): the one whose ranking of the rehearsal's fit graph best
recalls the rehearsal's positives. Without timestamps there is no trend (None).
"""

from __future__ import annotations

import numpy as np

from hybrid.data.interactions import Interactions
from hybrid.fusion.rehearsal import ColdValidation
from hybrid.models.trending import list_recall

DAY = 86_400
WINDOWS_DAYS = (1.0, 3.0, 7.0, 14.0, 30.0, 90.0, 365.0)


def recent_counts(data: Interactions, window_days: float | None) -> np.ndarray | None:
    """float64 [n_items]: interactions in the last ``window_days`` of ``data`` (None without
    timestamps or a window)."""
    if window_days is None or data.timestamps is None or not len(data):
        return None
    recent = data.timestamps >= data.timestamps.max() - window_days * DAY
    return np.bincount(data.items[recent], minlength=data.n_items).astype(np.float64)


def choose_window(split: ColdValidation, k: int = 20) -> tuple[float | None, dict[str, float]]:
    """(the window in days, Recall@k of each window's list on the rehearsal), or (None, {}) without
    timestamps. Ties go to the longer window; all-time counts break ties within a list."""
    fit = split.fit
    if fit.timestamps is None or not len(fit) or split.positives.nnz == 0:
        return None, {}
    total = fit.item_counts().astype(np.float64)
    tie = total / (total.max() + 1.0)
    seen = fit.matrix()
    recalls: dict[str, float] = {}
    best = (-1.0, WINDOWS_DAYS[-1])
    for days in WINDOWS_DAYS:
        order = np.argsort(-(recent_counts(fit, days) + tie), kind="stable")  # type: ignore[operator]
        recall = recalls[f"{days:g}d"] = round(list_recall(order, seen, split.positives, k), 4)
        if recall >= best[0]:
            best = (recall, days)
    return best[1], recalls
