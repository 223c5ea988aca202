"""A few of the hybrid's recommendations explained, for the report (issue 36).

For a run whose models include the hybrid, :func:`explained_examples` takes the top item of the
first test user with a history, the first new item (no training interaction) in such a user's
list (or, where no list holds one, in their ranking among new items only), and the top item of the first test user with no history, and explains each as
:mod:`hybrid.fusion.explain` does (only reading the fitted model; the rankings are untouched);
:func:`hybrid.evaluation.report.explained_lines` writes them under the report's tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid.evaluation.prepare import Prepared
from hybrid.fusion.model import FusionHybrid
from hybrid.models.base import Recommender


def explained_examples(model: Recommender, prepared: Prepared, top: np.ndarray,
                       new_top: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Up to three explained (kind, user, item) examples of ``top`` (int64 [users, k], rows in
    ``prepared.users`` order, -1 padding), the new item from ``new_top`` (the ranking among new
    items only, same shape) where no list of ``top`` holds one; none unless ``model`` is the hybrid."""
    if not isinstance(model, FusionHybrid) or len(top) == 0:
        return []
    known = np.diff(prepared.history[prepared.users].indptr)
    buckets = model.buckets_.cpu().numpy()
    valid = top >= 0
    picks: list[tuple[str, int, int]] = []
    warm_rows = np.flatnonzero((known > 0) & valid[:, 0])
    if len(warm_rows):
        picks.append(("a user with history", int(warm_rows[0]), int(top[warm_rows[0], 0])))
    for lists in (top, new_top):
        ok = lists is not None and lists >= 0
        new = ok & (buckets[np.where(ok, lists, 0)] == 0) & (known > 0)[:, None] if lists is not None else None
        if new is not None and new.any():
            row = int(np.flatnonzero(new.any(1))[0])
            picks.append(("a new item", row, int(lists[row, np.flatnonzero(new[row])[0]])))
            break
    empty = np.flatnonzero((known == 0) & valid[:, 0])
    if len(empty):
        picks.append(("a zero-history user", int(empty[0]), int(top[empty[0], 0])))
    if not picks:
        return []
    users = prepared.users[[row for _, row, _ in picks]]
    rows = model.explain(users, prepared.history[users], [np.array([item]) for _, _, item in picks])
    user_ids = prepared.fit_data.train.user_ids.to_numpy()
    item_ids = prepared.fit_data.train.item_ids.to_numpy()
    return [{"example": kind, **row.to_dicts(user_ids[user], item_ids)[0]}
            for (kind, _, _), user, row in zip(picks, users, rows, strict=True)]

