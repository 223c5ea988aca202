"""PinSage importance neighbourhoods: random walks with restart, top-T nodes by visit count.

PinSage (Ying et al. 2018, "Graph Convolutional Neural Networks for Web-Scale Recommender
Systems", §3.2) replaces a node's full neighbour list by the T nodes that random walks started
from it visit most, weighted by their L1-normalised visit counts. On a graph with hub items of
millions of users this bounds each aggregation to T inputs and keeps the ones that matter.

Walks run on the bipartite graph as one CSR over ``n_users + n_items`` nodes (users first, as in
:mod:`hybrid.graph.adjacency`). Every step moves to a uniform neighbour of the current node, after
first jumping back to the start node with probability ``restart_prob`` (so no step is wasted and
restarts keep the walk local). Only visits to a *target* node range are counted, and the start node
itself never is. On a bipartite graph the side says the parity of the distance walked, so one
function gives every neighbourhood a sampled LightGCN needs (:func:`bipartite_neighbourhoods`):

    user-item  T items around each user: a sampled N(u) for the item -> user aggregation. It
               holds the user's own items (1 hop) and, through similar users, items 3, 5 ... hops
               away: not restricted to the user's edges, which is PinSage's point.
    item-user  T users around each item: a sampled N(i) for the user -> item aggregation.
    item-item  T items 2, 4 ... hops away (item -> user -> item): PinSage's own item neighbourhoods.
    user-user  T users likewise.

LightGCN propagates between the two sides, so a sampled LightGCN layer takes ``user-item`` and
``item-user`` (``neighbourhood: walks``), or, by default, the walks' visits to each node's own
edges (:func:`edge_visit_counts`, ``neighbourhood: edges``); ``item-item`` is for PinSage-style
item towers and for candidate generation.

All walkers of a chunk of start nodes step together: a neighbour is ``indices[indptr[v] + r mod
deg(v)]`` for 40 random bits r, a gather per step. The randomness is a counter-based hash (draw
number walker * walk_length + step of a splitmix64 stream keyed by the seed), not a stateful
``torch.Generator``: each walker's draws depend only on (seed, start node, walk number, step), so
the result is identical for any ``chunk``, and chunks share no state; being integer arithmetic
only, it is meant to be bit-identical on CUDA too (``tests/test_scale_blocks.py`` checks where a
GPU is present; not yet run on one). What the walks cost at 5M-50M edges is in the ``sampled``
runs of ``benchmarks/results/scale.json`` (``build_s``: the walks and the sampled adjacency built
from them; ``peak_rss_bytes``; ``python benchmarks/scale.py``).

Why plain torch: on PyPI (checked with ``pip download`` for torch 2.13) ``pyg-lib`` has no
distribution at all, and ``torch-cluster`` 1.6.3 / ``torch-sparse`` 0.6.18 are sdists only, no
wheels (``--only-binary :all:`` finds nothing; the sdist's setup.py imports torch, so even the
download's metadata step fails in pip's isolated build, and an install means a C++/CUDA compile);
the PyG wheel index (data.pyg.org) does not resolve from here. Without them torch_geometric 2.8.1 cannot
walk: ``Node2Vec`` raises "requires 'pyg-lib>=0.6.0'", ``random_walk`` is ``torch.ops.pyg``, and
``NeighborSampler.sample_from_nodes`` "requires either 'pyg-lib' or 'torch-sparse'".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph.adjacency import row_entries
from hybrid.graph.counter_rng import stream_key, uniform_bits

logger = logging.getLogger(__name__)

NeighbourKind = Literal["user-item", "item-user", "item-item", "user-user"]
_KINDS = ("user-item", "item-user", "item-item", "user-user")

# Each step takes one 63-bit draw: the low bits decide the restart (resolution 2^-23 of
# restart_prob), the 40 above them pick the neighbour.
_RESTART_BITS = 23
_RESTART_MASK = (1 << _RESTART_BITS) - 1


@dataclass
class Neighbourhood:
    """Top-T importance neighbours of a set of start nodes.

    Attributes:
        index: int64 [n, T] neighbour indices, most visited first (ties: lower index first), in
            the target range's own numbering (item index for item targets); -1 pads nodes with
            fewer than T distinct visited neighbours, and fills isolated nodes' rows.
        weight: float32 [n, T] visit counts normalised over the kept T, so each row sums to 1
            (0 for an isolated row), descending; 0 where ``index`` is -1. The weights of
            PinSage's importance pooling.
    """

    index: torch.Tensor
    weight: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str) -> Neighbourhood:
        return Neighbourhood(self.index.to(device), self.weight.to(device))


def importance_neighbourhoods(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    start: torch.Tensor | None = None,
    *,
    targets: tuple[int, int] | None = None,
    n_walks: int = 20,
    walk_length: int = 10,
    restart_prob: float = 0.5,
    top_t: int = 10,
    seed: int | torch.Generator = 0,
    chunk: int = 8192,
) -> Neighbourhood:
    """Random walks with restart from each start node; its top-T visited target nodes.

    Args:
        indptr: int [n + 1] CSR row pointers of the graph (any graph; bipartite via
            :func:`bipartite_csr`). Its device is where the walks run.
        indices: int [nnz] neighbour of each CSR entry, on the same device.
        start: int [s] start nodes (default: all n); row k of the result belongs to ``start[k]``.
        targets: node range [lo, hi) whose visits count (default: all nodes); results are
            numbered from lo. The start node itself is never its own neighbour.
        n_walks: walks per start node.
        walk_length: steps per walk, each one a move (after a restart with ``restart_prob``);
            n_walks * walk_length visits per node are shared among its candidates.
        restart_prob: probability in [0, 1] of jumping back to the start before a step; 1 makes
            every step leave from the start (only direct neighbours, visited about equally).
        top_t: T, neighbours kept per node.
        seed: an int, or a ``torch.Generator`` from which one 62-bit key is drawn (advancing it).
            Same seed, same result, for any ``chunk`` and on any device.
        chunk: start nodes walked at once; working memory ≈ chunk * n_walks * walk_length * 40
            bytes (~66 MB at the defaults).

    Returns:
        :class:`Neighbourhood` with ``s`` rows, on the device of ``indptr``.
    """
    indptr, indices, start = _check_graph(indptr, indices, start)
    n = len(indptr) - 1
    lo, hi = (0, n) if targets is None else _node_range(targets, n)
    for name, value in (("n_walks", n_walks), ("walk_length", walk_length), ("top_t", top_t), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(restart_prob, int | float) and 0 <= restart_prob <= 1):
        raise ValueError(f"restart_prob must be a probability in [0, 1], got {restart_prob!r}")
    key = stream_key(seed)
    degree = indptr[1:] - indptr[:-1]
    index = torch.full((len(start), top_t), -1, dtype=torch.int64, device=indptr.device)
    weight = torch.zeros((len(start), top_t), dtype=torch.float32, device=indptr.device)
    walk = _Walk(indptr, indices, degree, n_walks, walk_length, round(restart_prob * 2**_RESTART_BITS), key, lo, hi)
    for begin in range(0, len(start) if len(indices) else 0, chunk):  # no edge: nobody moves
        rows = slice(begin, begin + chunk)
        index[rows], weight[rows] = walk.top(start[rows], top_t)
    short = int((index[:, -1] < 0).sum())
    logger.info("importance neighbourhoods: %d start nodes, %d walks x %d steps; %d with fewer than %d "
                "neighbours (%d with none)", len(start), n_walks, walk_length, short, top_t, int((index[:, 0] < 0).sum()))
    return Neighbourhood(index, weight)


def edge_visit_counts(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    start: torch.Tensor,
    *,
    n_walks: int = 20,
    walk_length: int = 10,
    restart_prob: float = 0.5,
    seed: int | torch.Generator = 0,
    chunk: int = 8192,
) -> torch.Tensor:
    """How often the walks of :func:`importance_neighbourhoods` from each start node visit each of
    its own neighbours: PinSage's importance restricted to the node's edges.

    Same walks (same seed, same draws) as :func:`importance_neighbourhoods`; a visit counts when it
    lands on a direct neighbour of the walk's start node, at any step.

    Returns:
        int64 [sum of deg(start)]: one count per CSR entry of the start nodes, in order (start[0]'s
        entries ``indices[indptr[start[0]]:indptr[start[0] + 1]]`` first).
    """
    indptr, indices, start = _check_graph(indptr, indices, start)
    key = stream_key(seed)
    degree = indptr[1:] - indptr[:-1]
    n = len(indptr) - 1
    walk = _Walk(indptr, indices, degree, n_walks, walk_length, round(restart_prob * 2**_RESTART_BITS), key, 0, n)
    parts = []
    for begin in range(0, len(start), chunk):
        rows = start[begin:begin + chunk]
        _, owner, entries = row_entries(indptr, rows)
        if not len(owner):  # no edge among these start nodes: nothing to count
            parts.append(owner)
            continue
        edge_keys = owner * n + indices[entries].long()  # (row in chunk, neighbour), ascending row
        visits = walk.visits(rows)  # a start node with an edge always moves, so some visit lands
        walker_row = torch.arange(len(rows), device=rows.device).repeat_interleave(n_walks).expand_as(visits)
        keys, counts = torch.unique((walker_row * n + visits)[visits >= 0], sorted=True, return_counts=True)
        at = torch.searchsorted(keys, edge_keys).clamp(max=len(keys) - 1)
        parts.append(torch.where(keys[at] == edge_keys, counts[at], 0))
    if not parts:
        return torch.zeros(0, dtype=torch.int64, device=indptr.device)
    return torch.cat(parts)


def bipartite_csr(
    graph: Interactions | sp.spmatrix | sp.sparray, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The user-item graph as one CSR over ``n_users + n_items`` nodes, users first.

    Args:
        graph: training :class:`~hybrid.data.interactions.Interactions`, or a users x items
            sparse matrix (non-zeros are edges; repeated entries count once).
        device: where the tensors go.

    Returns:
        (indptr int64 [n_users + n_items + 1], indices int64 [2 nnz]): user u's row lists items as
        n_users + i, item i's row (n_users + i) lists its users.
    """
    return _csr_tensors(_user_item_matrix(graph), device)


def _csr_tensors(r: sp.csr_matrix, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    n_users = r.shape[0]
    rt = r.T.tocsr()
    indptr = np.concatenate([r.indptr, r.nnz + rt.indptr[1:]]).astype(np.int64)
    indices = np.concatenate([r.indices.astype(np.int64) + n_users, rt.indices.astype(np.int64)])
    return torch.from_numpy(indptr).to(device), torch.from_numpy(indices).to(device)


def bipartite_neighbourhoods(
    graph: Interactions | sp.spmatrix | sp.sparray | tuple[torch.Tensor, torch.Tensor, int, int],
    kind: NeighbourKind,
    *,
    n_walks: int = 20,
    walk_length: int = 10,
    restart_prob: float = 0.5,
    top_t: int = 10,
    seed: int | torch.Generator = 0,
    chunk: int = 8192,
    device: torch.device | str = "cpu",
) -> Neighbourhood:
    """:func:`importance_neighbourhoods` of every user or every item of a user-item graph.

    Args:
        graph: training interactions, a users x items sparse matrix, or a prebuilt
            ``(indptr, indices, n_users, n_items)`` with the first two from :func:`bipartite_csr`
            (to build the graph once for several kinds).
        kind: ``"user-item"``, ``"item-user"``, ``"item-item"`` or ``"user-user"``: start side,
            then neighbour side (see the module docstring for which a sampled LightGCN needs).
        device: where the walks run and the result lives.
        n_walks, walk_length, restart_prob, top_t, seed, chunk: as in
            :func:`importance_neighbourhoods`.

    Returns:
        :class:`Neighbourhood` with one row per start-side node (user or item index), neighbours
        numbered on their own side (item or user index).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if isinstance(graph, tuple):
        indptr, indices, n_users, n_items = graph
        indptr, indices = indptr.to(device), indices.to(device)
    else:
        r = _user_item_matrix(graph)
        (n_users, n_items), (indptr, indices) = r.shape, _csr_tensors(r, device)
    if len(indptr) != n_users + n_items + 1:
        raise ValueError(f"graph: indptr has {len(indptr)} entries, expected n_users + n_items + 1 = {n_users + n_items + 1}")
    users, items = (0, n_users), (n_users, n_users + n_items)
    source, target = {"user-item": (users, items), "item-user": (items, users),
                      "item-item": (items, items), "user-user": (users, users)}[kind]
    start = torch.arange(*source, device=indptr.device)
    return importance_neighbourhoods(
        indptr, indices, start, targets=target, n_walks=n_walks, walk_length=walk_length,
        restart_prob=restart_prob, top_t=top_t, seed=seed, chunk=chunk,
    )


class _Walk:
    """One configuration of walks over one graph; :meth:`top` walks a chunk of start nodes."""

    def __init__(
        self, indptr: torch.Tensor, indices: torch.Tensor, degree: torch.Tensor, n_walks: int,
        walk_length: int, restart_below: int, key: int, lo: int, hi: int,
    ) -> None:
        self.indptr, self.indices, self.degree = indptr, indices, degree
        self.n_walks, self.walk_length, self.restart_below, self.key = n_walks, walk_length, restart_below, key
        self.lo, self.hi = lo, hi

    def visits(self, start: torch.Tensor) -> torch.Tensor:
        """int64 [walk_length, s * n_walks] node after each step, -1 where the walker could not
        move (an isolated start node)."""
        device = start.device
        origin = start.repeat_interleave(self.n_walks)
        origin_deg = self.degree[origin]
        walker = origin * self.n_walks + torch.arange(self.n_walks, device=device).repeat(len(start))
        counter = walker * self.walk_length  # one 63-bit draw a step, a range per walker
        out = torch.empty((self.walk_length, len(origin)), dtype=torch.int64, device=device)
        pos, deg = origin, origin_deg
        last = max(len(self.indices) - 1, 0)
        for step in range(self.walk_length):
            bits = uniform_bits(self.key, counter + step)
            jump = ((bits & _RESTART_MASK) < self.restart_below) | (deg == 0)  # dead end: restart too
            pos, deg = torch.where(jump, origin, pos), torch.where(jump, origin_deg, deg)
            offset = (bits >> _RESTART_BITS) % deg.clamp(min=1)  # 40 bits: bias < deg / 2^40
            moved = deg > 0
            nxt = self.indices[(self.indptr[pos] + offset).clamp(max=last)].long()
            pos = torch.where(moved, nxt, pos)
            deg = torch.where(moved, self.degree[pos], deg)
            out[step] = torch.where(moved, pos, -1)
        return out

    def top(self, start: torch.Tensor, top_t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(index int64 [s, T], weight float32 [s, T]) for the start nodes of one chunk."""
        s, device = len(start), start.device
        visits = self.visits(start)
        origin = start.repeat_interleave(self.n_walks)
        hit = (visits >= self.lo) & (visits < self.hi) & (visits != origin)
        row = torch.arange(s, device=device).repeat_interleave(self.n_walks).expand_as(visits)
        span = self.hi - self.lo
        keys, counts = torch.unique((row * span + visits - self.lo)[hit], sorted=True, return_counts=True)
        rows, local = keys // span, keys % span
        # Sort by (row, count descending); stable, so equal counts keep ascending node order.
        most = self.n_walks * self.walk_length
        order = torch.sort(rows * (most + 1) + (most - counts), stable=True).indices
        rows, local, counts = rows[order], local[order], counts[order]
        per_row = torch.bincount(rows, minlength=s)
        first = torch.cumsum(per_row, 0) - per_row
        rank = torch.arange(len(rows), device=device) - first[rows]
        keep = rank < top_t
        index = torch.full((s, top_t), -1, dtype=torch.int64, device=device)
        kept = torch.zeros((s, top_t), dtype=torch.float32, device=device)
        index[rows[keep], rank[keep]] = local[keep]
        kept[rows[keep], rank[keep]] = counts[keep].float()
        total = kept.sum(1, keepdim=True)
        return index, torch.where(total > 0, kept / total.clamp(min=1), 0.0)


def _check_graph(
    indptr: torch.Tensor, indices: torch.Tensor, start: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    for name, value in (("indptr", indptr), ("indices", indices)):
        if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.is_floating_point():
            raise ValueError(f"{name} must be a 1-D integer tensor, got {_describe(value)}")
    if len(indptr) < 2 or int(indptr[0]) != 0 or int(indptr[-1]) != len(indices):
        raise ValueError(
            f"indptr must start at 0 and end at len(indices) = {len(indices)} (CSR row pointers), "
            f"got {len(indptr)} entries from {int(indptr[0]) if len(indptr) else None} to "
            f"{int(indptr[-1]) if len(indptr) else None}"
        )
    if indices.device != indptr.device:
        raise ValueError(f"indices is on {indices.device} but indptr on {indptr.device}; move both to one device")
    n = len(indptr) - 1
    if bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError("indptr must be non-decreasing (CSR row pointers)")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise ValueError(f"indices must be node ids in [0, {n}), got [{int(indices.min())}, {int(indices.max())}]")
    if start is None:
        start = torch.arange(n, device=indptr.device)
    else:
        start = torch.as_tensor(start, device=indptr.device)
        if start.dim() != 1 or start.is_floating_point():
            raise ValueError(f"start must be a 1-D integer tensor of node ids, got {_describe(start)}")
        start = start.long()
        if len(start) and (int(start.min()) < 0 or int(start.max()) >= n):
            raise ValueError(f"start must hold node ids in [0, {n}), got [{int(start.min())}, {int(start.max())}]")
    return indptr.long(), indices, start


def _node_range(targets: tuple[int, int], n: int) -> tuple[int, int]:
    ok = isinstance(targets, tuple | list) and len(targets) == 2
    if ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in targets):
        lo, hi = int(targets[0]), int(targets[1])
        if 0 <= lo < hi <= n:
            return lo, hi
    raise ValueError(f"targets must be a node range (lo, hi) with 0 <= lo < hi <= {n}, got {targets!r}")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-D {value.dtype} tensor"
    return type(value).__name__


def _user_item_matrix(graph: Interactions | sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    if isinstance(graph, Interactions):
        return graph.matrix()
    if sp.issparse(graph):
        r = sp.csr_matrix(graph, dtype=np.float32)
        r.sum_duplicates()
        r.eliminate_zeros()
        return r
    raise TypeError(f"graph must be Interactions or a users x items scipy sparse matrix, got {type(graph).__name__}")
