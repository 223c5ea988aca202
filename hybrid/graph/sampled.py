"""Sampled LightGCN propagation: PinSage importance neighbourhoods instead of the full graph.

The full propagation reads every edge at every step; on a graph of a billion edges that is what
stops fitting. PinSage (Ying et al. 2018) bounds each node's aggregation to its T most important
neighbours (random walks with restart, :mod:`hybrid.graph.walks`) weighted by their normalised
visit counts, and computes only the L-hop neighbourhood a mini-batch needs. Here that is

    Ã [n_users + n_items]²   row u: T items around user u; row n_users + i: T users around item i,
                             weighted by visit share (optionally degree-corrected as LightGCN's Â);
                             or (``neighbourhood="edges"``, :func:`edge_adjacency`) Â's own rows,
                             a node of more than T edges keeping the T its walks visit most;
    e^{(l+1)}_v = Σ_w Ã_vw e^{(l)}_w,   final e_v = Σ_{l=0..L} e^{(l)}_v / (L + 1)

with a training step computing e^{(l)} only on the batch's frontier: the nodes within L - l hops
of its users and items in Ã (:func:`propagate_frontier`); and inference layer by layer in row
chunks, each layer written to a memory-mapped file (:func:`propagate_chunked`, PinSage's
MapReduce step here chunked), so no step holds more than two layers and a chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph.adjacency import csr_from_parts, row_block, row_entries
from hybrid.graph.walks import bipartite_csr, bipartite_neighbourhoods, edge_visit_counts

logger = logging.getLogger(__name__)


def importance_adjacency(train: Interactions, top_t: int = 20, n_walks: int = 20, walk_length: int = 10,
                         restart_prob: float = 0.5, seed: int = 0, device: torch.device | str = "cpu",
                         weighting: Literal["visits", "symmetric"] = "symmetric",
                         neighbourhood: Literal["walks", "edges"] = "walks") -> torch.Tensor:
    """Ã (see the module docstring) as a sparse CSR tensor [n, n], n = n_users + n_items, on ``device``.

    Args:
        train: the training interactions.
        top_t: T, neighbours kept per node.
        n_walks, walk_length, restart_prob: the walks of :func:`hybrid.graph.walks.importance_neighbourhoods`.
        seed: the walks' seed (same seed, same Ã on any device).
        weighting: with "walks": "visits": each row's normalised visit counts (PinSage's importance
            pooling, rows summing to 1); "symmetric": those times sqrt(deg v / deg w), which is
            LightGCN's 1 / sqrt(deg v deg w) when a node's neighbourhood is its direct one, visited
            uniformly.
        neighbourhood: "walks": the T most visited nodes of the other side, any odd number of hops
            away (PinSage); "edges": the node's own edges, the T most visited of them where it has
            more (:func:`edge_adjacency`; ``weighting`` does not apply).
    """
    if neighbourhood == "edges":
        return edge_adjacency(train, top_t, n_walks, walk_length, restart_prob, seed, device)
    if neighbourhood != "walks":
        raise ValueError(f"neighbourhood must be 'walks' or 'edges', got {neighbourhood!r}")
    start = time.perf_counter()
    n_users, n_items = train.n_users, train.n_items
    graph = (*bipartite_csr(train, device), n_users, n_items)
    settings = {"n_walks": n_walks, "walk_length": walk_length, "restart_prob": restart_prob, "top_t": top_t,
                "seed": seed, "device": device}
    around_users = bipartite_neighbourhoods(graph, "user-item", **settings)
    around_items = bipartite_neighbourhoods(graph, "item-user", **settings)
    index = torch.cat([around_users.index + n_users, around_items.index])
    index[torch.cat([around_users.index, around_items.index]) < 0] = -1
    weight = torch.cat([around_users.weight, around_items.weight])
    keep = index >= 0
    if weighting == "symmetric":
        degree = (graph[0][1:] - graph[0][:-1]).to(weight.dtype).clamp_min(1)
        weight = torch.where(keep, weight * (degree.unsqueeze(1) / degree[index.clamp_min(0)]).sqrt(), weight)
    crow = torch.zeros(n_users + n_items + 1, dtype=torch.int64, device=index.device)
    torch.cumsum(keep.sum(1), 0, out=crow[1:])
    logger.info("importance adjacency: %d nodes, top %d of %d walks x %d steps each, %d entries in %.1f s",
                n_users + n_items, top_t, n_walks, walk_length, int(keep.sum()), time.perf_counter() - start)
    return csr_from_parts(crow, index[keep], weight[keep], (n_users + n_items, n_users + n_items))


def edge_adjacency(train: Interactions, top_t: int = 20, n_walks: int = 20, walk_length: int = 10,
                   restart_prob: float = 0.5, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """LightGCN's Â with every row cut to at most T entries: Ã of ``neighbourhood: edges``.

    A node with at most T edges keeps its row of Â exactly (1 / sqrt(deg v deg w)); a node with
    more keeps the T edges its walks visit most (:func:`hybrid.graph.walks.edge_visit_counts`;
    ties: CSR order), scaled so the row sums to its full row's sum, so a hub's aggregation keeps
    its scale. Only the heavy rows cost walks, and Ã = Â once T reaches the largest degree.
    """
    start = time.perf_counter()
    n_users, n_items = train.n_users, train.n_items
    n = n_users + n_items
    indptr, indices = bipartite_csr(train, device)
    degree = indptr[1:] - indptr[:-1]
    owner = torch.repeat_interleave(torch.arange(n, device=indptr.device), degree)
    weight = (degree[owner] * degree[indices]).float().rsqrt()
    keep = torch.ones(len(indices), dtype=torch.bool, device=indptr.device)
    heavy = (degree > top_t).nonzero().squeeze(1)
    if len(heavy):
        counts = edge_visit_counts(indptr, indices, heavy, n_walks=n_walks, walk_length=walk_length,
                                   restart_prob=restart_prob, seed=seed)
        first, local, entries = row_entries(indptr, heavy)
        most = n_walks * walk_length
        order = torch.sort(local * (most + 1) + (most - counts), stable=True).indices  # row, count desc
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=indptr.device) - first[local[order]]
        keep[entries[rank >= top_t]] = False
        full_sum = torch.zeros(n, device=indptr.device).index_add_(0, owner, weight)
        kept_sum = torch.zeros(n, device=indptr.device).index_add_(0, owner[keep], weight[keep])
        scale = torch.where(kept_sum > 0, full_sum / kept_sum.clamp_min(1e-30), 1.0)
        weight = weight * scale[owner]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=indptr.device)
    torch.cumsum(torch.bincount(owner[keep], minlength=n), 0, out=crow[1:])
    logger.info("edge adjacency: %d nodes, %d of them cut to their %d most visited edges, %d of %d entries in %.1f s",
                n, len(heavy), top_t, int(keep.sum()), len(indices), time.perf_counter() - start)
    return csr_from_parts(crow, indices[keep], weight[keep], (n, n))


FRONTIER_MAX_SHARE = 0.5  # a frontier wider than this share of the nodes: one pass over the whole of Ã is cheaper


class _Spmm(torch.autograd.Function):
    """``adj @ x`` differentiable in ``x`` for a sparse ``adj`` that is not symmetric (backward: adjᵀ @ grad)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, ctx.adj_t @ grad


def transposed(adj: torch.Tensor) -> torch.Tensor:
    """``adj``ᵀ as sparse CSR (what the backward of a pass over all of ``adj`` reads)."""
    return adj.t().to_sparse_csr()


Combine = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(layer l, nodes' own e^{(l-1)} [m, d], their aggregated neighbours Ã e^{(l-1)} [m, d]) -> e^{(l)}``:
how a layer is formed from the aggregation (None: the aggregation itself, LightGCN)."""


def propagate_all(adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor, num_layers: int,
                  combine: Combine | None = None) -> torch.Tensor:
    """``propagate(adj, x, num_layers)`` with the right gradient for a non-symmetric ``adj`` (``adj_t`` its transpose)."""
    out = layer = x
    for level in range(1, num_layers + 1):
        agg = _Spmm.apply(adj, adj_t, layer) if torch.is_grad_enabled() and layer.requires_grad else adj @ layer
        layer = agg if combine is None else combine(level, layer, agg)
        out = out + layer
    return out / (num_layers + 1)


def propagate_frontier(adj: torch.Tensor, x: torch.Tensor, num_layers: int, rows: torch.Tensor,
                       adj_t: torch.Tensor | None = None, combine: Combine | None = None) -> torch.Tensor:
    """``propagate(adj, x, num_layers)[rows]`` computing each layer only where the rows need it.

    Layer l is computed on the nodes within L - l hops of ``rows`` (the frontier), so a step over
    a sparse Ã costs about batch · T^L rows instead of the graph; the same values and gradient
    (w.r.t. ``x``) as the full propagation followed by a gather.

    Args:
        adj: sparse CSR [n, n] (Ã, or any adjacency).
        x: layer-0 node embeddings [n, d].
        num_layers: L ≥ 0.
        rows: int64 [k] node indices, repeats allowed.
        adj_t: ``adj``ᵀ (:func:`transposed`); with it, a frontier that grows past
            ``FRONTIER_MAX_SHARE`` of the nodes (a small graph, or a deep L) becomes one pass over
            all of ``adj`` (:func:`propagate_all`), the cheaper way to the same values there.
        combine: how a layer is formed (:data:`Combine`; PinSage's learned aggregation), or None.

    Returns:
        float [k, d].
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    unique, inverse = torch.unique(rows, return_inverse=True)
    fronts = _frontiers(adj, unique, num_layers, None if adj_t is None else FRONTIER_MAX_SHARE * adj.shape[0])
    if fronts is None:
        return propagate_all(adj, adj_t, x, num_layers, combine).index_select(0, rows)
    h = x.index_select(0, fronts[-1])  # e^{(0)} on the widest frontier
    total = h.index_select(0, torch.searchsorted(fronts[-1], unique))
    for level in range(num_layers - 1, -1, -1):
        here, below = fronts[level], fronts[level + 1]
        _, owner, cols, values = row_block(adj, here)
        block = torch.sparse_coo_tensor(torch.stack([owner, torch.searchsorted(below, cols)]), values,
                                        (len(here), len(below)), is_coalesced=True, check_invariants=False)
        agg = torch.sparse.mm(block, h)  # the next layer, on this frontier
        h = agg if combine is None else combine(num_layers - level, h.index_select(0, torch.searchsorted(below, here)), agg)
        total = total + h.index_select(0, torch.searchsorted(here, unique))
    return (total / (num_layers + 1)).index_select(0, inverse)


def _frontiers(adj: torch.Tensor, start: torch.Tensor, num_layers: int, limit: float | None) -> list[torch.Tensor] | None:
    """The sorted nodes within 0, 1, ..., L hops of ``start`` (sorted unique) in ``adj``, grown in a
    node mask (no sort of the neighbour lists); None as soon as one is wider than ``limit`` nodes."""
    mask = torch.zeros(adj.shape[0], dtype=torch.bool, device=adj.device)
    mask[start] = True
    fronts = [start]
    for _ in range(num_layers):
        _, _, cols, _ = row_block(adj, fronts[-1])
        mask[cols] = True
        fronts.append(mask.nonzero().squeeze(1))
        if limit is not None and len(fronts[-1]) > limit:
            return None
    return fronts


def frontier_sizes(adj: torch.Tensor, rows: torch.Tensor, num_layers: int) -> list[int]:
    """Distinct nodes within 0, 1, ..., L hops of ``rows`` in ``adj``: the rows a frontier step computes."""
    fronts = _frontiers(adj, torch.unique(rows), num_layers, None)
    return [len(front) for front in fronts or []]


def propagate_chunked(adj: torch.Tensor, x: torch.Tensor, num_layers: int, folder: str | Path,
                      chunk: int = 1 << 18) -> np.memmap:
    """``propagate(adj, x, num_layers)`` layer by layer in row chunks, through memory-mapped files.

    Each layer is read from one file and written to the next, ``chunk`` rows at a time, and the
    running layer sum is a third file: memory holds one chunk's rows of Ã and of the output, not
    the graph's layers. Returns the final embeddings as a read-only float32 memmap [n, d] in
    ``folder`` (``final.npy``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, d = x.shape
    layer = np.lib.format.open_memmap(folder / "layer0.npy", mode="w+", dtype=np.float32, shape=(n, d))
    total = np.lib.format.open_memmap(folder / "final.npy", mode="w+", dtype=np.float32, shape=(n, d))
    with torch.no_grad():
        for begin in range(0, n, chunk):
            layer[begin:begin + chunk] = total[begin:begin + chunk] = x[begin:begin + chunk].detach().float().cpu().numpy()
        for level in range(num_layers):
            nxt = np.lib.format.open_memmap(folder / f"layer{level + 1}.npy", mode="w+", dtype=np.float32, shape=(n, d))
            source = torch.from_numpy(np.asarray(layer))  # read through the page cache, chunk by chunk below
            for begin in range(0, n, chunk):
                rows = torch.arange(begin, min(begin + chunk, n), device=adj.device)
                _, owner, cols, values = row_block(adj, rows)
                part = torch.zeros(len(rows), d)
                part.index_add_(0, owner.cpu(), source[cols.cpu()] * values.cpu().unsqueeze(1))
                nxt[begin:begin + len(rows)] = part.numpy()
                total[begin:begin + len(rows)] += part.numpy()
            nxt.flush()
            del layer, source
            (folder / f"layer{level}.npy").unlink()
            layer = nxt
        for begin in range(0, n, chunk):
            total[begin:begin + chunk] /= num_layers + 1
        total.flush()
    del layer
    (folder / f"layer{num_layers}.npy").unlink()
    return np.load(folder / "final.npy", mmap_mode="r")
