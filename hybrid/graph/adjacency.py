"""The user-item bipartite graph and parameter-free LightGCN propagation.

Users and items are the nodes of one graph with ``n_users + n_items`` nodes (users first); each
training interaction is an undirected edge. The normalised adjacency

    Â = D^{-1/2} A D^{-1/2},   Â_ui = 1 / sqrt(|N(u)| |N(i)|)

is built once from the training interactions, on the training device, as a ``torch.sparse_csr``
tensor (int32 indices). Â is symmetric, so the gradient of ``Â @ X`` with respect to ``X`` is
``Â @ G``: :func:`spmm` uses that instead of the transpose that torch's CSR autograd builds (by
sorting all non-zeros) on every backward call. A training step needs the final embeddings of its
batch's rows only; :func:`propagate_rows` computes just those, with the exact gradient.

Why a CSR tensor rather than PyG's ``LGConv``: message passing over ``edge_index`` materialises an
[n_edges, d] tensor per layer, and PyG's CSR path normalises the adjacency on every call and takes
torch's transposing CSR backward; none of that is needed here. ``python benchmarks/vs_pyg.py``
times one training step of each variant against ours in one run, on the machine at hand (it prints
its table; no figure is kept here).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.interactions import Interactions


def normalized_adjacency(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Symmetric-normalised adjacency Â of the user-item graph.

    Args:
        users: int64 [nnz] user index of each interaction.
        items: int64 [nnz] item index of each interaction (same length as ``users``).
        n_users: number of user nodes (rows 0 .. n_users - 1).
        n_items: number of item nodes (rows n_users .. n_users + n_items - 1).
        device: where the returned tensor lives.

    Returns:
        float32 ``torch.sparse_csr`` [n_users + n_items, n_users + n_items], symmetric, with
        Â_{u, n_users + i} = Â_{n_users + i, u} = 1 / sqrt(deg(u) deg(i)) per distinct edge.
        Isolated nodes (cold users and items) have empty rows, so they propagate zeros.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape:
        raise ValueError(f"users and items must have the same length, got {users.shape} and {items.shape}")
    if len(users) and (users.max() >= n_users or items.max() >= n_items or min(users.min(), items.min()) < 0):
        raise ValueError(f"users must be in [0, {n_users}) and items in [0, {n_items}); got indices outside")
    ones = np.ones(len(users), np.float32)
    r = sp.csr_matrix((ones, (users, items)), shape=(n_users, n_items))
    r.data[:] = 1.0  # repeated pairs count once
    user_deg = np.asarray(r.sum(1)).ravel()
    item_deg = np.asarray(r.sum(0)).ravel()
    with np.errstate(divide="ignore"):
        du = np.where(user_deg > 0, user_deg**-0.5, 0.0).astype(np.float32)
        di = np.where(item_deg > 0, item_deg**-0.5, 0.0).astype(np.float32)
    r_norm = (sp.diags(du) @ r @ sp.diags(di)).astype(np.float32)
    adj = sp.bmat([[None, r_norm], [r_norm.T, None]], format="csr", dtype=np.float32)
    adj.sort_indices()
    return csr_tensor(adj, device)


def csr_tensor(matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a float32 ``torch.sparse_csr`` tensor on ``device``.

    Indices are int32 while they fit (what MKL and cuSPARSE use natively: int64 indices cost a
    conversion on every CPU product), int64 beyond 2^31 - 1 non-zeros.
    """
    index_dtype = torch.int32 if matrix.nnz < 2**31 and max(matrix.shape) < 2**31 else torch.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.as_tensor(matrix.indptr, dtype=index_dtype),
            torch.as_tensor(matrix.indices, dtype=index_dtype),
            torch.as_tensor(matrix.data, dtype=torch.float32),
            size=matrix.shape,
            check_invariants=False,  # built by scipy: sorted and in range
        ).to(device)


def interaction_adjacency(interactions: Interactions, device: torch.device | str = "cpu") -> torch.Tensor:
    """:func:`normalized_adjacency` of a training :class:`~hybrid.data.interactions.Interactions`."""
    return normalized_adjacency(
        interactions.users, interactions.items, interactions.n_users, interactions.n_items, device
    )


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``; backward is ``adj @ grad`` (no transpose)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj  # type: ignore[attr-defined]
        return adj @ x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adj @ grad  # type: ignore[attr-defined]


def spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` for a *symmetric* sparse ``adj`` [n, n] and dense ``x`` [n, d], differentiable in ``x``."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _SymmetricSpmm.apply(adj, x)
    return adj @ x


def propagate(adj: torch.Tensor, x: torch.Tensor, num_layers: int) -> torch.Tensor:
    """LightGCN propagation: the mean of the layer outputs (He et al. 2020, eq. 3-4).

    e^{(l+1)} = Â e^{(l)} (no weights, no nonlinearity); returns Σ_{l=0..L} α_l e^{(l)} with
    α_l = 1 / (L + 1).

    Args:
        adj: symmetric normalised adjacency [n, n] (:func:`normalized_adjacency`).
        x: layer-0 node embeddings [n, d], users first then items.
        num_layers: L ≥ 0; 0 returns ``x`` itself.

    Returns:
        float [n, d] final node embeddings.
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    out = x
    for _ in range(num_layers):
        x = spmm(adj, x)
        out = out + x
    return out / (num_layers + 1)


def row_entries(crow: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where rows ``rows`` of a CSR with row pointers ``crow`` keep their entries: (sub_crow
    [len(rows) + 1] of the gathered block, owner [nnz'] the position in ``rows`` of each entry,
    positions [nnz'] each entry's index into the column and value arrays), row by row in order."""
    crow = crow.long()
    start = crow[rows]
    lengths = crow[rows + 1] - start
    sub_crow = torch.zeros(len(rows) + 1, dtype=torch.int64, device=crow.device)
    torch.cumsum(lengths, 0, out=sub_crow[1:])
    owner = torch.repeat_interleave(torch.arange(len(rows), device=crow.device), lengths)
    return sub_crow, owner, start[owner] + torch.arange(len(owner), device=crow.device) - sub_crow[owner]


def row_block(adj: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zeros of ``adj[rows, :]``: (crow [len(rows) + 1], row of each [nnz'], cols, values)."""
    sub_crow, owner, positions = row_entries(adj.crow_indices(), rows)
    return sub_crow, owner, adj.col_indices()[positions], adj.values()[positions]


def csr_from_parts(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, size=shape, check_invariants=False)


class _PropagateRows(torch.autograd.Function):
    """Rows ``rows`` of :func:`propagate`, with the exact gradient, at a fraction of the cost.

    Forward: layers 1 .. L-1 in full, the last only at ``rows`` (Â[rows, :] e^{(L-1)}).
    Backward (Â symmetric, G the gradient scattered onto ``rows``): Horner's rule
    g ← G + Â g, whose first product only touches the columns ``rows`` (Â[:, rows] = Â[rows, :]ᵀ).
    So a step costs L - 1 full products each way instead of L, plus two products with the
    batch's rows of Â (a small share of the non-zeros when the batch is small against the graph).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, adj: torch.Tensor, x: torch.Tensor, num_layers: int, rows: torch.Tensor
    ) -> torch.Tensor:
        out = x[rows]
        block = None
        if num_layers:
            crow, owner, cols, values = row_block(adj, rows)
            layer = x
            for _ in range(num_layers - 1):
                layer = adj @ layer
                out = out + layer[rows]
            out = out + csr_from_parts(crow.to(adj.crow_indices().dtype), cols, values, (len(rows), len(x))) @ layer
            block = (owner, cols, values)
        ctx.state = (adj, num_layers, len(x), block)
        ctx.save_for_backward(rows)
        return out / (num_layers + 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, None, None]:  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        adj, num_layers, n, block = ctx.state
        grad = grad / (num_layers + 1)
        scattered = torch.zeros(n, grad.shape[1], dtype=grad.dtype, device=grad.device).index_add_(0, rows, grad)
        if block is None:
            return None, scattered, None, None
        owner, cols, values = block
        order = torch.argsort(cols, stable=True)
        crow = torch.zeros(n + 1, dtype=torch.int64, device=grad.device)
        torch.cumsum(torch.bincount(cols, minlength=n), 0, out=crow[1:])
        dtype = adj.crow_indices().dtype
        transposed = csr_from_parts(crow.to(dtype), owner[order].to(dtype), values[order], (n, len(rows)))
        acc = scattered + transposed @ grad
        for _ in range(num_layers - 1):
            acc = scattered + adj @ acc
        return None, acc, None, None


# propagate_rows falls back to the full propagation when the batch's rows of Â hold more than
# this share of its non-zeros (a small graph, where every batch touches almost every node: the
# partial products then cost more than the full one).
PARTIAL_MAX_SHARE = 0.5


def propagate_rows(adj: torch.Tensor, x: torch.Tensor, num_layers: int, rows: torch.Tensor) -> torch.Tensor:
    """``propagate(adj, x, num_layers)[rows]`` without propagating the last layer everywhere.

    What a training step needs: the final embeddings of the batch's users and items only. Same
    values and gradient (w.r.t. ``x``) as the full propagation followed by a gather.

    Args:
        adj: symmetric normalised adjacency [n, n] in ``torch.sparse_csr`` layout.
        x: layer-0 node embeddings [n, d].
        num_layers: L ≥ 0.
        rows: int64 [k] node indices, repeats allowed.

    Returns:
        float [k, d].
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    # Each distinct row once: a batch repeats popular items (and, on small graphs, every node).
    unique, inverse = torch.unique(rows, return_inverse=True)
    crow = adj.crow_indices()
    if int((crow[unique + 1] - crow[unique]).sum()) > PARTIAL_MAX_SHARE * adj.values().numel():
        return propagate(adj, x, num_layers).index_select(0, rows)  # the rows touch most of the graph anyway
    # index_select, not x[i]: its backward (index_add) is deterministic on CPU; advanced
    # indexing's (accumulating index_put) is not, and a seeded fit must repeat exactly.
    return _PropagateRows.apply(adj, x, num_layers, unique).index_select(0, inverse)
