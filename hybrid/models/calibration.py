"""How many top-K slots cold items may take: the warm recall a content scale costs on validation.

Items with no interactions are scored by their content vectors times a scale s; warm items by
their graph vectors. In one ranking, cold items that score above a user's warm items push the
last of them out of the top K. For each s, exactly and in one pass:

    n_ur(s)  = #{cold i : s · u·c_i > the score of u's r-th warm item}
    j_u(s)   = #{r ≤ K : r + n_ur(s) ≤ K}      (u's warm items still in the merged top K)
    R_u(j)   = u's validation recall within their top j warm items
    loss(s)  = 1 − Σ_u R_u(j_u(s)) / Σ_u R_u(K)

which is the relative drop of validation Recall@K that inserting the cold items causes. Pricing
every s of a fine grid this way costs one ranking of the validation users instead of one per s.

Two simplifications: warm items are priced at their graph vectors (the
hybrid chooses τ after s; with the τ = 1 it picks on the data sets here, every warm item is pure
graph anyway), and a validation item with no training interactions is cold, so the recall a
cold slot could win on it is not counted (only what the warm items lose is).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.evaluation.metrics import hit_matrix
from hybrid.retrieval.ranking import mask_history


def cold_slot_loss(
    users: torch.Tensor,
    warm_items: torch.Tensor,
    content_items: torch.Tensor,
    cold_items: np.ndarray,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    scales: Sequence[float],
    k: int = 20,
    batch_size: int = 2048,
) -> dict[float, float]:
    """Relative loss of validation Recall@k that cold items cause at each content scale s.

    Args:
        users: float [n_users, d] user vectors.
        warm_items: float [n_items, d] warm items' vectors as ranked (cold rows ignored).
        content_items: float [n_items, d] content vectors, scaled by s for cold items (warm rows ignored).
        cold_items: bool [n_items] items scored by content alone (no training interactions).
        train: CSR [n_users, n_items] masked items.
        valid: CSR [n_users, n_items] held-out warm items.
        scales: the s values to price, each > 0.
        k: list length.
        batch_size: users scored at once.

    Returns:
        ``{s: loss}``, loss in [0, 1]; all zeros when no user has a validation item.
    """
    rows = np.flatnonzero(np.diff(valid.indptr) > 0)
    cold = torch.as_tensor(cold_items, device=users.device)
    n_warm = int((~cold).sum())
    cut = min(k, n_warm)
    if len(rows) == 0 or cut == 0 or not bool(cold.any()):
        return dict.fromkeys(scales, 0.0)
    if min(scales) <= 0:
        raise ValueError(f"content scales must be > 0, got {min(scales)}")
    scale = torch.as_tensor(list(scales), dtype=users.dtype, device=users.device)
    base = torch.zeros((), dtype=torch.float64, device=users.device)  # Σ_u R_u(cut)
    kept = torch.zeros(len(scales), dtype=torch.float64, device=users.device)  # Σ_u R_u(cut − c_u(s))
    cold_vectors = content_items[cold]
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            u = users[torch.as_tensor(batch, device=users.device)]
            scores = mask_history(u @ warm_items.T, train[batch])
            scores[:, cold] = -torch.inf
            values, top = torch.topk(scores, cut, dim=1)
            n_rel = torch.as_tensor(np.diff(valid[batch].indptr), device=users.device).double()
            hits = hit_matrix(top, valid[batch]).double().cumsum(1) / n_rel.unsqueeze(1)
            recall_at = torch.cat([torch.zeros_like(hits[:, :1]), hits], dim=1)  # [b, cut + 1]: R_u(j)
            base += recall_at[:, cut].sum()
            content = torch.sort(u @ cold_vectors.T, dim=1).values  # [b, n_cold] ascending
            # Cold items above the r-th warm item: s · c > t_r  <=>  c > t_r / s (s > 0), counted
            # by binary search for every (scale, rank) at once.
            bounds = (values.unsqueeze(1) / scale.view(1, -1, 1)).reshape(len(batch), -1)  # [b, S * cut]
            above = content.shape[1] - torch.searchsorted(content, bounds.contiguous(), right=True)
            # The r-th warm item stays in the top `cut` iff r + (cold items above it) <= cut; those
            # that stay are a prefix, so their number is a count.
            ranks = torch.arange(1, cut + 1, device=users.device)
            stays = (ranks + above.view(len(batch), len(scales), cut)) <= cut
            warm_left = stays.sum(2)  # [b, S]
            kept += recall_at.gather(1, warm_left).sum(0)
    loss = (1 - kept / base) if base > 0 else torch.zeros_like(kept)
    return {s: float(value) for s, value in zip(scales, loss.tolist(), strict=True)}
