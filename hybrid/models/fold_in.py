"""Fold a user the model never trained on into its embedding space from the items they name.

Start from the mean final embedding of the history items, then take a few Adam steps of BPR on
the user's vector alone (item vectors frozen, negatives drawn from the items seen in training).
Why not the mean alone: the mean is pulled towards popular items; the BPR steps restore what makes
the user differ. ``python benchmarks/fold_in.py`` measures both against the fitted users' own
Recall@20 (each validation user re-entered from their training items); it prints its table.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


def _draw_pairs(rows: sp.csr_matrix, pool: np.ndarray, steps: int, pairs: int, seed: int,
                ) -> tuple[np.ndarray, np.ndarray]:
    """int64 [steps, b, pairs] positives (each row's own items) and negatives (from ``pool``).

    Each user's draws come from their own stream, seeded by their items, so a user's vector does
    not depend on who else is in the batch (each user's loss is their own mean, too)."""
    positives = np.empty((steps, rows.shape[0], pairs), np.int64)
    negatives = np.empty((steps, rows.shape[0], pairs), np.int64)
    for r in range(rows.shape[0]):
        items_r = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
        rng = np.random.default_rng([seed, *items_r.tolist()])
        positives[:, r] = items_r[rng.integers(0, len(items_r), (steps, pairs))]
        negatives[:, r] = pool[rng.integers(0, len(pool), (steps, pairs))]
    return positives, negatives


def refine_by_bpr(
    items: torch.Tensor,
    start: torch.Tensor,
    history: sp.csr_matrix,
    pool: np.ndarray,
    steps: int,
    lr: float,
    reg: float = 1e-3,
    pairs: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """``steps`` Adam steps of BPR on user vectors with the item vectors frozen.

    Args:
        items: float [n_items, d] final item vectors (not modified).
        start: float [b, d] initial user vectors.
        history: CSR [b, n_items] each user's known items; rows with none keep ``start``.
        pool: int64 item indices negatives are drawn from (a user's own items are skipped).
        steps: Adam steps (0: ``start`` unchanged).
        lr: Adam learning rate.
        reg: L2 weight on the user vectors.
        pairs: (positive, negative) pairs drawn per user and step.
        seed: seeds each user's draws (with their items): the same user gets the same vector,
            whoever else is in the batch.

    Returns:
        float [b, d] on ``start``'s device.
    """
    history = sp.csr_matrix(history)
    counts = np.diff(history.indptr)
    active = np.flatnonzero(counts > 0)
    out = start.detach().clone()
    if steps <= 0 or len(active) == 0 or len(pool) == 0:
        return out
    rows = history[active]
    rows.sort_indices()
    counts = counts[active]
    n_items = history.shape[1]
    known = np.sort(np.repeat(np.arange(len(active)), counts) * n_items + rows.indices)
    positives, negatives = _draw_pairs(rows, pool, steps, pairs, seed)
    valid = ~np.isin(np.arange(len(active))[None, :, None] * n_items + negatives, known)
    device = start.device
    frozen = items.detach()
    # Scoring may run under inference mode; these steps need autograd on the user vectors only.
    with torch.inference_mode(False), torch.enable_grad():
        frozen = frozen.clone()
        user = start[torch.as_tensor(active, device=device)].detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([user], lr=lr)
        for step in range(steps):
            weight = torch.as_tensor(valid[step], dtype=user.dtype, device=device)
            gap = (frozen[torch.as_tensor(positives[step], device=device)]
                   - frozen[torch.as_tensor(negatives[step], device=device)])
            margin = (user.unsqueeze(1) * gap).sum(-1)
            per_user = -(F.logsigmoid(margin) * weight).sum(1) / weight.sum(1).clamp(min=1)
            loss = (per_user + reg * user.square().sum(1)).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    out[torch.as_tensor(active, device=device)] = user.detach()
    return out
