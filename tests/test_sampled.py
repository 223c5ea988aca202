"""Sampled LightGCN: the importance adjacency, frontier propagation, chunked inference, the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph.adjacency import interaction_adjacency, propagate
from hybrid.graph.sampled import (
    importance_adjacency,
    propagate_all,
    propagate_chunked,
    propagate_frontier,
    transposed,
)
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


def test_lightgcn_sampled_learns_the_communities() -> None:
    train = blocks()
    model = make_model("lightgcn_sampled", {"top_t": 5, "epochs": 30, "dim": 16}).fit(FitData(train=train))
    history = train.matrix()
    scores = model.score(np.arange(train.n_users), history)
    top = torch.topk(scores.masked_fill(torch.as_tensor(history.toarray() > 0), -torch.inf), 3, dim=1).indices
    own = torch.where(torch.arange(train.n_users).unsqueeze(1) < 20, top < 15, top >= 15)
    assert own.float().mean() > 0.9


def test_bad_sampling_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="propagation"):
        make_model("lightgcn", {"propagation": "partial"})
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
