"""Ranking metrics of a run's rankings: over all items, and restricted (new among new, warm among warm)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid.evaluation.prepare import Prepared
from hybrid.metrics import padded_metrics, ranking_metrics, restrict_columns


def restricted_top(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """int64 [n, k]: a restricted ranking from :func:`~hybrid.retrieval.ranking.top_k_masked`, with -1 where
    there is no item (scored -inf: seen or outside the restriction, or fewer items than ``k``)."""
    out = np.full((len(items), k), -1, np.int64)
    out[:, : items.shape[1]] = np.where(scores > -np.inf, items, -1)
    return out


def evaluate_rankings(
    top: np.ndarray, prepared: Prepared, ks: list[int], restricted: dict[str, np.ndarray] | None = None,
    bootstrap: int = 0, seed: int = 0,
) -> dict[str, Any]:
    """Metrics for every group from the ranked item indices of ``prepared.users``, and for every
    restricted ranking in ``restricted`` (name of ``prepared.restricted`` -> :func:`restricted_top`)
    against the test items among its items; users with none of those are left out. ``bootstrap``:
    95% intervals over users for the groups (:func:`~hybrid.metrics.metrics_from_hits`)."""
    relevant_all = prepared.test[prepared.users]
    result: dict[str, Any] = {"buckets": {}, "user_buckets": {}}
    nested = {"bucket": "buckets", "user": "user_buckets"}
    for name, (rows, items) in prepared.groups.items():
        relevant = relevant_all if items is None else restrict_columns(relevant_all, items)
        metrics = ranking_metrics(top[rows], relevant[rows], ks, bootstrap, seed)
        if ":" in name:
            kind, label = name.split(":", 1)
            result[nested[kind]][label] = metrics
        else:
            result[name] = metrics
    for name, ranked in (restricted or {}).items():
        result[name] = padded_metrics(ranked, restrict_columns(relevant_all, prepared.restricted[name]), ks)
    return result
