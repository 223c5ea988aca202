"""The text-neighbour graph the text signals read: each item's top-M text neighbours.

Exact batched products up to :data:`EXACT_KNN_MAX` items; above, a faiss IVF index (the n² products
would dominate the fit). Either way the search runs by blocks of query items, in this process or,
with ``ray``, as Ray tasks (:mod:`hybrid.parallel`): the same blocks, the same graph.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.parallel import ray_session
from hybrid.retrieval.ann import AnnConfig, AnnIndex

# Above this many items the text kNN graph comes from an IVF index, not the exact batched products.
EXACT_KNN_MAX = 50_000
IVF_BLOCK = 65_536  # queries per IVF search call

Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, cols, cosines


def text_neighbours(vectors: torch.Tensor, m: int, batch_size: int = 2048, ray: str | None = None,
                    workers: int | None = None, index: AnnIndex | None = None) -> sp.csr_matrix:
    """CSR [n, n]: row i holds the cosine of i's top-``m`` text neighbours (positive ones, not i).

    Args:
        vectors: float32 [n, d] L2-normalised text vectors (zero rows: items with no text).
        ray: run the query blocks as Ray tasks ("local" or a cluster address), ``workers`` at once.
        index: an IVF index over ``vectors`` (:func:`ivf_index`) to search instead of the exact
            products (None: one is built past ``EXACT_KNN_MAX`` items).
    """
    n = vectors.shape[0]
    m = min(m, n - 1)
    if m <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    if index is None and n > EXACT_KNN_MAX:
        index = ivf_index(vectors)
    size = IVF_BLOCK if index is not None else batch_size
    if ray is None:
        with torch.no_grad():
            blocks = [_ivf_block(index, vectors, start, start + size, m) if index is not None
                      else _exact_block(vectors, start, start + size, m) for start in range(0, n, size)]
    else:
        blocks = _ray_blocks(vectors, index, size, m, ray, workers)
    rows, cols, vals = (np.concatenate(part) for part in zip(*blocks, strict=True))
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)


def ivf_index(vectors: torch.Tensor, sq8: bool = False) -> AnnIndex:
    """An IVF index (4√n cells, 32 probed) whose k-means sees 16 vectors a cell for 5 rounds: the
    one over the text vectors that the neighbour search past :data:`EXACT_KNN_MAX` items and the
    gates' column rehearsal (:mod:`hybrid.fusion.columns`) read, and the column rehearsal's over
    the graph half's factors (``sq8``: stored as 8-bit scalars, where only candidates are asked
    of it). Why the short k-means: it was most of the build, and with 32 of 4√n cells probed a
    coarser partition loses little (on ``benchmarks/fit_scaling.py``'s 200k-item text, the top-51
    overlap with exact search was 0.996 against 0.998 with the default 64 vectors a cell for 10
    rounds, in a third of the build; measured once)."""
    config = AnnConfig(kind="ivf", train_per_cell=16, kmeans_iterations=5, sq8=sq8)
    return AnnIndex(config).build(vectors.detach().float().cpu().numpy())


def _exact_block(vectors: torch.Tensor, start: int, stop: int, m: int) -> Block:
    """The top-``m`` neighbours of items ``start:stop`` by exact products with every item."""
    stop = min(stop, vectors.shape[0])
    sims = vectors[start:stop] @ vectors.T
    idx = torch.arange(start, stop, device=vectors.device)
    sims[idx - start, idx] = -torch.inf
    values, top = torch.topk(sims, m, dim=1)
    keep = values > 0
    return (idx.unsqueeze(1).expand_as(top)[keep].cpu().numpy(), top[keep].cpu().numpy(), values[keep].cpu().numpy())


def _ivf_block(index: AnnIndex, vectors: torch.Tensor | np.ndarray, start: int, stop: int, m: int) -> Block:
    """The same through a faiss IVF index (4·√n cells, 32 probed)."""
    points = vectors[start:stop]
    points = points.detach().float().cpu().numpy() if isinstance(points, torch.Tensor) else np.ascontiguousarray(points)
    values, top = index.search(points, m + 1)
    own = np.arange(start, start + len(top))[:, None]
    keep = (top >= 0) & (top != own) & (values > 0)
    # At most m per row: the self match (when found) is dropped, else the last neighbour is.
    keep &= np.cumsum(keep, axis=1) <= m
    return np.broadcast_to(own, top.shape)[keep], top[keep], values[keep]


def _task_block(points: np.ndarray, index: np.ndarray | None, start: int, stop: int, m: int) -> Block:
    """One Ray task's block: the vectors and the serialised index come from the object store."""
    torch.set_num_threads(1)
    if index is not None:
        return _ivf_block(AnnIndex.from_bytes(AnnConfig(kind="ivf"), index), points, start, stop, m)
    with torch.no_grad():
        return _exact_block(torch.from_numpy(np.array(points)), start, stop, m)


def _ray_blocks(vectors: torch.Tensor, index: AnnIndex | None, size: int, m: int, address: str,
                workers: int | None) -> list[Block]:
    """:func:`text_neighbours`' blocks as Ray tasks, at least ``4 × workers`` of them."""
    points = vectors.detach().float().cpu().numpy()
    n = len(points)
    with ray_session(address, workers) as (ray, workers):
        size = max(1, min(size, math.ceil(n / (4 * workers))))
        shared = ray.put(points), ray.put(None if index is None else index.to_bytes())
        task = ray.remote(num_cpus=1)(_task_block)
        return ray.get([task.remote(*shared, start, start + size, m) for start in range(0, n, size)])
