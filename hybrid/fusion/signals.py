"""The signals the hybrid fuses, per user and item, computed for a batch of users at a time.

    graph      g(u, i)   the warm scorer's score (a graph filter or LightGCN); 0 for new items
    profile    c(u, i)   cos(mean text vector of u's items, x_i): what content kNN ranks by
    text_knn   k(u, i)   Σ_{j ∈ h(u)} S_ij: u's items among i's top-M text neighbours
    text_graph t(u, i)   Σ_j Ŝ_ij g(u, j): the graph scores of i's text neighbours (Ŝ row-normalised),
                         which carries what the graph knows to new and sparse items
    popularity p(i)      log(1 + n_i), standardised over the catalogue and clipped to ±3

Each user-item signal is standardised per user over the catalogue (mean 0, variance 1), so the
fusion weights see one scale whatever the scorer's, the graph's size or the user's history length.
S [n_items, n_items] keeps each item's top-M text neighbours (cosine > 0, itself excluded).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.graph.adjacency import csr_tensor
from hybrid.retrieval.ann import AnnConfig, AnnIndex

# Above this many items the text kNN graph comes from an IVF index, not the exact batched products.
EXACT_KNN_MAX = 50_000

FEATURES = ("graph", "profile", "text_knn", "text_graph", "popularity")


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


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-row z-score of float [b, n] (rows with no spread become 0)."""
    mean = x.mean(1, keepdim=True)
    std = x.std(1, keepdim=True)
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


class FeatureBuilder:
    """The per-(user, item) signals of the module docstring for one fitted state.

    Args:
        text: float32 [n_items, d] L2-normalised text vectors.
        neighbours: CSR [n_items, n_items] text neighbours (:func:`text_neighbours`).
        counts: int64 [n_items] interactions per item in the graph the scorer was fitted on.
        device: where the batch tensors live.
    """

    def __init__(self, text: torch.Tensor, neighbours: sp.csr_matrix, counts: np.ndarray, device: torch.device) -> None:
        self.text = text
        self.neighbours = csr_tensor(neighbours, device)
        row_sums = np.asarray(neighbours.sum(1)).ravel()
        scale = np.divide(1.0, row_sums, out=np.zeros_like(row_sums), where=row_sums > 0)
        self.neighbours_mean = csr_tensor(sp.csr_matrix(sp.diags(scale) @ neighbours, dtype=np.float32), device)
        popularity = torch.as_tensor(np.log1p(counts), dtype=torch.float32, device=device)
        # Clipped: an item far outside the usual counts must not get an extrapolated weight.
        self.popularity = ((popularity - popularity.mean()) / popularity.std().clamp_min(1e-6)).clamp(-3, 3)
        self.device = device

    def profile_vectors(self, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d] mean text vector of each row's items (zero for an empty row)."""
        counts = np.maximum(np.diff(history.indptr), 1).astype(np.float32)
        values = (history.data > 0).astype(np.float32) / np.repeat(counts, np.diff(history.indptr))
        mean = sp.csr_matrix((values, history.indices, history.indptr), shape=history.shape)
        return csr_tensor(mean, self.device) @ self.text

    def signals(self, graph: torch.Tensor, history: sp.csr_matrix, profiles: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The standardised signals, in :data:`FEATURES` order, each float32 [b, n_items].

        Args:
            graph: float32 [b, n_items] the warm scorer's scores.
            history: CSR [b, n_items] each user's known items.
            profiles: float32 [b, d] profile vectors overriding :meth:`profile_vectors` (e.g. from
                a new user's text), or None.
        """
        if profiles is None:
            profiles = self.profile_vectors(history)
        profile = torch.nn.functional.normalize(profiles, dim=1) @ self.text.T
        rows = torch.as_tensor((history > 0).astype(np.float32).toarray(), device=self.device)
        text_knn = (self.neighbours @ rows.T).T
        text_graph = (self.neighbours_mean @ graph.T).T
        del rows
        popularity = self.popularity.expand(graph.shape[0], -1)
        return [standardise(graph), standardise(profile), standardise(text_knn), standardise(text_graph), popularity]
