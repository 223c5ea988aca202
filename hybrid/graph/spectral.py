"""The top right singular vectors of a normalised interaction matrix: the ideal low-pass filter
of GF-CF and BSPM (hybrid.models.graph_filters)."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from hybrid.graph.sharded_svd import row_shard, sharded_top_right_vectors

EXACT_SVD_MAX = 4096  # top_right_vectors is exact (an eigendecomposition) up to this many nodes on the smaller side


def top_right_vectors(norm: sp.csr_matrix, k: int, iterations: int, seed: int, device: torch.device) -> torch.Tensor:
    """float32 [n_items, k]: the top ``k`` right singular vectors of ``norm`` [n_users, n_items].

    Exact where the smaller side has at most ``EXACT_SVD_MAX`` nodes: the eigenvectors of the
    smaller Gram matrix (float32; ``EXACT_SVD_MAX``² entries at most, 64 MB, an O(n³)
    eigendecomposition of seconds), mapped to the item side by Rᵀ u / σ when the users are the
    smaller side. There it is faster than a randomised SVD of the large ``k`` the filters use
    (448 of at most 4,096 is over a tenth of the rank) and exact. Above, seeded randomised
    subspace iteration (:mod:`hybrid.graph.sharded_svd`, oversampled by ``OVERSAMPLE`` columns,
    ``iterations`` power steps), over row shards in a process group of several ranks (each rank's
    products with its rows, all-reduced). It replaced :func:`torch.svd_lowrank`, which multiplies
    a transposed, uncoalesced sparse tensor by column-major bases: 37 s against 14 s for k = 256 of
    ``benchmarks/fit_scaling.py``'s 50k x 200k graph on this project's 2-core machine (measured once).
    """
    n_users, n_items = norm.shape
    if min(n_users, n_items) <= EXACT_SVD_MAX:
        by_users = n_users < n_items
        values, vectors = _gram_eigenvectors(norm, by_users, k)
        values, vectors = values[:k], vectors[:, :k]
        if by_users:  # v = Rᵀ u / σ; directions with σ ≈ 0 carry nothing and stay zero
            sigma = np.sqrt(np.clip(values, 0, None))
            keep = sigma > 1e-6 * max(sigma[0], 1e-30)
            vectors = np.asarray(norm.T @ vectors) / np.where(keep, sigma, 1.0)
            vectors[:, ~keep] = 0.0
        return torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32), device=device)
    # One process is a group of one: the same subspace iteration (sharded_svd), its products local.
    return sharded_top_right_vectors(row_shard(norm), k, iterations, seed, device)


# The exact path computes at least this many of the top eigenvectors (all where there are fewer):
# the filters' defaults (GF-CF 256, BSPM 448) then share one decomposition, and a subset is
# cheaper than all of them (LAPACK's MRRR driver skips the vectors nobody reads).
EIGEN_MIN = 512
_EIGEN_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}


def _gram_eigenvectors(norm: sp.csr_matrix, by_users: bool, k: int) -> tuple[np.ndarray, np.ndarray]:
    """At least ``k`` of the smaller Gram matrix's top eigenvalues and eigenvectors, descending
    (float32). The last decomposition is kept, keyed by the matrix's bytes: GF-CF and BSPM
    fitted on the same graph (the hybrid's choice of graph half) share one O(n³) computation."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (np.asarray(norm.shape), norm.indptr, norm.indices, norm.data, np.asarray([by_users])):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = digest.digest()
    n = min(norm.shape)
    if key not in _EIGEN_CACHE or _EIGEN_CACHE[key][0].shape[0] < min(k, n):
        # Single precision: the filters keep float32 vectors anyway, and LAPACK's single-precision
        # MRRR is the faster one (the fit profile's "graph half: gf_cf" stage shows the cost).
        gram = (norm @ norm.T if by_users else norm.T @ norm).toarray().astype(np.float32)
        wanted = min(n, max(k, EIGEN_MIN))
        values, vectors = scipy.linalg.eigh(gram, subset_by_index=[n - wanted, n - 1], driver="evr")  # ascending
        _EIGEN_CACHE.clear()
        _EIGEN_CACHE[key] = (values[::-1], vectors[:, ::-1])
    return _EIGEN_CACHE[key]
