"""Sampled LightGCN: the importance adjacency, frontier propagation, chunked inference, the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph.adjacency import interaction_adjacency, propagate
from hybrid.graph.sampled import (
    edge_adjacency,
    importance_adjacency,
    propagate_all,
    propagate_chunked,
    propagate_frontier,
    transposed,
)
from hybrid.graph.walks import bipartite_csr, edge_visit_counts, importance_neighbourhoods
from hybrid.models import FitData, make_model


def blocks(n_users: int = 40, n_items: int = 30, seed: int = 0) -> Interactions:
    """Two communities: users < n/2 take items < n/2, the others the rest (6 items each)."""
    rng = np.random.default_rng(seed)
    half_u, half_i = n_users // 2, n_items // 2
    rows = [(u, int(i)) for u in range(n_users)
            for i in rng.choice(np.arange(half_i) + (0 if u < half_u else half_i), 6, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return Interactions.from_frame(frame, user_ids=range(n_users), item_ids=range(n_items))


def test_importance_rows_are_weighted_means_over_the_other_side_within_the_community() -> None:
    train = blocks()
    adj = importance_adjacency(train, top_t=5, seed=0, weighting="visits").to_dense()
    n_users = train.n_users
    assert torch.allclose(adj.sum(1), torch.ones(adj.shape[0]), atol=1e-5)
    assert (adj[:n_users, :n_users] == 0).all() and (adj[n_users:, n_users:] == 0).all()  # bipartite
    assert ((adj > 0).sum(1) <= 5).all()
    first_users, first_items = slice(0, 20), slice(n_users, n_users + 15)
    assert adj[first_users, n_users + 15:].sum() == 0 and adj[first_items, 20:n_users].sum() == 0  # no crossing
    assert torch.equal(adj, importance_adjacency(train, top_t=5, seed=0, weighting="visits").to_dense())  # seeded


def test_symmetric_weighting_is_lightgcns_normalisation_on_direct_neighbourhoods() -> None:
    """One-step walks keeping every neighbour: Ã approaches Â = D^-1/2 A D^-1/2 as walks grow."""
    train = blocks()
    sampled = importance_adjacency(train, top_t=30, n_walks=400, walk_length=10, restart_prob=1.0).to_dense()
    exact = interaction_adjacency(train, "cpu").to_dense()
    assert ((sampled > 0) == (exact > 0)).all()
    assert (sampled - exact).abs().max() < 0.25 * exact.max()


def test_edge_neighbourhoods_are_lightgcns_rows_cut_to_the_most_visited_edges() -> None:
    train = blocks()
    exact = interaction_adjacency(train, "cpu").to_dense()
    indptr, indices = bipartite_csr(train)
    degree = indptr[1:] - indptr[:-1]
    assert torch.allclose(edge_adjacency(train, top_t=int(degree.max())).to_dense(), exact, atol=1e-6)  # Ã = Â
    cut = importance_adjacency(train, top_t=5, seed=3, neighbourhood="edges").to_dense()
    assert ((cut != 0) <= (exact != 0)).all() and ((cut != 0).sum(1) == degree.clamp(max=5)).all()
    assert torch.allclose(cut.sum(1), exact.sum(1), atol=1e-5)  # a hub's aggregation keeps its scale
    heavy = (degree > 5).nonzero().squeeze(1)
    counts = edge_visit_counts(indptr, indices, heavy, seed=3)
    offset = 0
    for node in heavy.tolist():
        edges = indices[indptr[node]:indptr[node + 1]]
        mine = counts[offset:offset + len(edges)]
        offset += len(edges)
        kept = cut[node, edges] != 0
        assert mine[kept].min() >= mine[~kept].max()  # the most visited edges stay
        scale = exact[node].sum() / exact[node, edges[kept]].sum()
        assert torch.allclose(cut[node, edges[kept]], exact[node, edges[kept]] * scale, atol=1e-6)


def test_edge_visit_counts_are_the_walks_own_visits() -> None:
    """With restart 1 every step lands on a direct neighbour: the counts are the normalised weights
    of the same walks' importance neighbourhoods, and any chunk size gives them."""
    indptr, indices = bipartite_csr(blocks())
    start = torch.tensor([0, 7, 45, 60])
    counts = edge_visit_counts(indptr, indices, start, n_walks=8, walk_length=5, restart_prob=1.0, seed=1)
    assert torch.equal(counts, edge_visit_counts(indptr, indices, start, n_walks=8, walk_length=5,
                                                 restart_prob=1.0, seed=1, chunk=1))
    top = importance_neighbourhoods(indptr, indices, start, n_walks=8, walk_length=5, restart_prob=1.0,
                                    top_t=40, seed=1)
    offset = 0
    for row, node in enumerate(start.tolist()):
        edges = indices[indptr[node]:indptr[node + 1]]
        mine = counts[offset:offset + len(edges)]
        offset += len(edges)
        assert int(mine.sum()) == 8 * 5
        weight = dict(zip(top.index[row].tolist(), top.weight[row].tolist(), strict=True))
        assert all(abs(weight.get(int(e), 0.0) - c / 40) < 1e-6 for e, c in zip(edges.tolist(), mine.tolist(), strict=True))


def test_frontier_propagation_equals_the_full_one_in_value_and_gradient() -> None:
    """Against dense matrix powers, for the symmetric Â and the (not symmetric) importance Ã."""
    train = blocks()
    for adj in (interaction_adjacency(train, "cpu"), importance_adjacency(train, top_t=4)):
        adj = adj.to(torch.float64)
        x = torch.randn(adj.shape[0], 8, dtype=torch.float64, requires_grad=True)
        rows = torch.tensor([0, 3, 3, 45, 69, 12])
        part = propagate_frontier(adj, x, 3, rows)
        whole = propagate_frontier(adj, x, 3, rows, transposed(adj))  # the frontier covers the graph: one pass
        layer, total = x, x
        for _ in range(3):
            layer = adj.to_dense() @ layer
            total = total + layer
        full = (total / 4)[rows]
        assert torch.allclose(part, full) and torch.allclose(whole, full)
        weights = torch.randn_like(part)
        grads = [torch.autograd.grad((out * weights).sum(), x)[0] for out in (part, whole, full)]
        assert torch.allclose(grads[0], grads[2]) and torch.allclose(grads[1], grads[2])


def test_chunked_inference_through_memory_maps_equals_the_full_propagation(tmp_path) -> None:
    adj = importance_adjacency(blocks(), top_t=4)
    x = torch.randn(adj.shape[0], 8)
    final = propagate_chunked(adj, x, 3, tmp_path, chunk=7)
    assert torch.allclose(torch.from_numpy(np.asarray(final)), propagate(adj, x, 3), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.npy"]  # the layer files are gone


@pytest.mark.parametrize("neighbourhood", ["walks", "edges"])
def test_lightgcn_sampled_learns_the_communities(neighbourhood: str) -> None:
    train = blocks()
    params = {"top_t": 5, "epochs": 30, "dim": 16, "neighbourhood": neighbourhood}
    model = make_model("lightgcn_sampled", params).fit(FitData(train=train))
    history = train.matrix()
    scores = model.score(np.arange(train.n_users), history)
    top = torch.topk(scores.masked_fill(torch.as_tensor(history.toarray() > 0), -torch.inf), 3, dim=1).indices
    own = torch.where(torch.arange(train.n_users).unsqueeze(1) < 20, top < 15, top >= 15)
    assert own.float().mean() > 0.9


def test_bad_sampling_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="propagation"):
        make_model("lightgcn", {"propagation": "partial"})
    with pytest.raises(ValueError, match="neighbourhood"):
        make_model("lightgcn_sampled", {"neighbourhood": "hops"})
    with pytest.raises(ValueError, match="top_t must be"):
        make_model("lightgcn_sampled", {"top_t": 0}).fit(FitData(train=blocks()))


def test_a_learned_aggregation_gives_the_same_layers_on_the_frontier_as_over_the_graph() -> None:
    """PinSage's CONVOLVE through the frontier path equals it over the whole of Ã, values and gradients."""
    train = blocks()
    adj = importance_adjacency(train, top_t=4).to(torch.float64)
    layers = torch.nn.ModuleList(torch.nn.Linear(16, 8).double() for _ in range(3))

    def combine(level: int, own: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        return torch.tanh(layers[level - 1](torch.cat([own, agg], dim=1)))

    x = torch.randn(adj.shape[0], 8, dtype=torch.float64, requires_grad=True)
    rows = torch.tensor([0, 3, 45, 69])
    part = propagate_frontier(adj, x, 3, rows, combine=combine)
    whole = propagate_all(adj, transposed(adj), x, 3, combine)[rows]
    assert torch.allclose(part, whole)
    weights = torch.randn_like(part)
    grads = [torch.autograd.grad((out * weights).sum(), [x, layers[0].weight]) for out in (part, whole)]
    assert all(torch.allclose(a, b) for a, b in zip(*grads, strict=True))


def test_lightgcn_sampled_with_pinsage_aggregation_learns_the_communities() -> None:
    train = blocks()
    model = make_model("lightgcn_sampled", {"aggregation": "learned", "epochs": 30, "dim": 16, "lr": 0.02})
    model.fit(FitData(train=train))
    history = train.matrix()
    scores = model.score(np.arange(train.n_users), history)
    top = torch.topk(scores.masked_fill(torch.as_tensor(history.toarray() > 0), -torch.inf), 3, dim=1).indices
    own = torch.where(torch.arange(train.n_users).unsqueeze(1) < 20, top < 15, top >= 15)
    assert own.float().mean() > 0.9
