"""The text-neighbour graph the text signals read: each item's top-M text neighbours.

Exact batched products up to :data:`EXACT_KNN_MAX` items; above, a faiss IVF index (the n² products
would dominate the fit).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.retrieval.ann import AnnConfig, AnnIndex

# Above this many items the text kNN graph comes from an IVF index, not the exact batched products.
EXACT_KNN_MAX = 50_000


def text_neighbours(vectors: torch.Tensor, m: int, batch_size: int = 2048) -> sp.csr_matrix:
    """CSR [n, n]: row i holds the cosine of i's top-``m`` text neighbours (positive ones, not i).

    Args:
        vectors: float32 [n, d] L2-normalised text vectors (zero rows: items with no text).
    """
    n = vectors.shape[0]
    m = min(m, n - 1)
    if m <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    if n > EXACT_KNN_MAX:
        return _ivf_neighbours(vectors, m)
    rows, cols, vals = [], [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sims = vectors[start:start + batch_size] @ vectors.T
            idx = torch.arange(start, min(start + batch_size, n), device=vectors.device)
            sims[idx - start, idx] = -torch.inf
            values, top = torch.topk(sims, m, dim=1)
            keep = values > 0
            rows.append(idx.unsqueeze(1).expand_as(top)[keep].cpu().numpy())
            cols.append(top[keep].cpu().numpy())
            vals.append(values[keep].cpu().numpy())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                         dtype=np.float32)


def _ivf_neighbours(vectors: torch.Tensor, m: int) -> sp.csr_matrix:
    """:func:`text_neighbours` through a faiss IVF index (4·√n cells, 32 probed): the exact
    search's n² products would dominate the fit past :data:`EXACT_KNN_MAX` items."""
    points = vectors.detach().float().cpu().numpy()
    index = AnnIndex(AnnConfig(kind="ivf")).build(points)
    n, rows, cols, vals = len(points), [], [], []
    for start in range(0, n, 65_536):
        values, top = index.search(points[start:start + 65_536], m + 1)
        own = np.arange(start, start + len(top))[:, None]
        keep = (top >= 0) & (top != own) & (values > 0)
        # At most m per row: the self match (when found) is dropped, else the last neighbour is.
        keep &= np.cumsum(keep, axis=1) <= m
        rows.append(np.broadcast_to(own, top.shape)[keep])
        cols.append(top[keep])
        vals.append(values[keep])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                         dtype=np.float32)
