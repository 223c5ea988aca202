"""Batched top-K ranking with known items masked; never builds the full users x items matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.models.base import Recommender


def mask_history(scores: torch.Tensor, history: sp.csr_matrix) -> torch.Tensor:
    """Set the scores of each row's history items to -inf, in place.

    Args:
        scores: float [b, n_items].
        history: CSR [b, n_items] aligned with ``scores`` rows.
    """
    counts = torch.as_tensor(np.diff(history.indptr), dtype=torch.int64, device=scores.device)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=scores.device), counts)
    cols = torch.as_tensor(history.indices, dtype=torch.int64, device=scores.device)
    scores[rows, cols] = -torch.inf
    return scores


def check_k(k: int) -> int:
    """``k`` itself when it is a positive integer; otherwise a ``ValueError`` naming it."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def top_k(
    model: Recommender,
    users: np.ndarray,
    history: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
    filter_seen: bool = True,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank items for ``users`` in batches.

    Args:
        model: a fitted model.
        users: int64 [n] internal user indices.
        history: CSR [n_users_total, n_items], each user's known items (by user index).
        k: list length; capped at the number of items.
        batch_size: users scored at once (memory ~ batch_size x n_items floats).
        filter_seen: mask history items so they are never recommended.
        candidates: int64 item indices to rank among (e.g. new arrivals); None: every item.

    Returns:
        items int64 [n, k] and scores float32 [n, k], best first.
    """
    users = np.asarray(users, dtype=np.int64)
    k = min(check_k(k), history.shape[1] if candidates is None else len(candidates))
    excluded = None
    if candidates is not None:
        excluded = torch.ones(history.shape[1], dtype=torch.bool)
        excluded[torch.as_tensor(candidates, dtype=torch.int64)] = False
    out_items = np.empty((len(users), k), np.int64)
    out_scores = np.empty((len(users), k), np.float32)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        rows = history[batch]
        with torch.inference_mode():
            scores = model.score(batch, rows).float()
            if filter_seen:
                mask_history(scores, rows)
            if excluded is not None:
                scores.masked_fill_(excluded.to(scores.device), -torch.inf)
            values, items = torch.topk(scores, k, dim=1)
        out_items[start : start + len(batch)] = items.cpu().numpy()
        out_scores[start : start + len(batch)] = values.cpu().numpy()
    return out_items, out_scores
