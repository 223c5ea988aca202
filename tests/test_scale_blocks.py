"""Building blocks for sampled training on large graphs: the synthetic power-law generator (exact
ids, no repeated pair, heavy tails, planted communities, seeded) and PinSage importance
neighbourhoods (walks stay in their component, weights normalised and sorted, the expected top
neighbour, identical for any chunk size, seed and device)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hybrid.data.interactions import Interactions
from hybrid.data.synthetic import planted_communities, power_law_interactions
from hybrid.graph.walks import (
    Neighbourhood,
    bipartite_csr,
    bipartite_neighbourhoods,
    importance_neighbourhoods,
)

KINDS = ("user-item", "item-user", "item-item", "user-user")
GRAPH = {"n_users": 2000, "n_items": 1000, "n_edges": 20_000, "communities": 4}


@pytest.fixture(scope="module")
def graph() -> Interactions:
    return power_law_interactions(**GRAPH, seed=1)


# ---------------------------------------------------------------------- generator
def test_generator_has_exact_ids_no_repeated_pair_and_every_user(graph: Interactions) -> None:
    assert (graph.n_users, graph.n_items) == (2000, 1000)
    assert list(graph.user_ids[:3]) == [0, 1, 2] and graph.item_ids[-1] == 999
    assert 0.99 * GRAPH["n_edges"] <= len(graph) <= GRAPH["n_edges"]
    keys = graph.users * graph.n_items + graph.items
    assert (np.diff(keys) > 0).all()  # sorted by (user, item), so no pair twice
    assert graph.items.min() >= 0 and graph.items.max() < graph.n_items
    assert graph.user_counts().min() >= 1
    assert graph.has_time and graph.timestamps.min() >= 1_577_836_800  # 2020
    assert graph.matrix().nnz == len(graph)


def test_generator_result_equals_what_the_constructor_builds(graph: Interactions) -> None:
    rebuilt = Interactions(graph.user_ids, graph.item_ids, graph.users[::-1].copy(), graph.items[::-1].copy(),
                           graph.weights, graph.timestamps[::-1].copy())
    for name in ("users", "items", "weights", "timestamps"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(graph, name))
        assert getattr(rebuilt, name).dtype == getattr(graph, name).dtype


def test_generator_degrees_are_heavy_tailed(graph: Interactions) -> None:
    items = np.sort(graph.item_counts())[::-1]
    assert items[: len(items) // 100].sum() > 0.08 * items.sum()  # top 1% of items: > 8x their share
    users = graph.user_counts()
    assert users.max() > 8 * users.mean()
    flat = power_law_interactions(**GRAPH, seed=1, user_exponent=0.0, item_exponent=0.0)
    top = np.sort(flat.item_counts())[::-1]
    assert top[: len(top) // 100].sum() < 0.03 * top.sum()  # exponent 0: no tail


def test_generator_plants_communities(graph: Interactions) -> None:
    user_comm, item_comm = planted_communities(2000, 1000, seed=1, communities=4)
    assert np.bincount(item_comm).tolist() == [250] * 4
    inside = (user_comm[graph.users] == item_comm[graph.items]).mean()
    assert 0.8 <= inside <= 0.9  # in_community 0.8 plus the global draws that land inside
    mixed = power_law_interactions(**GRAPH, seed=1, in_community=0.0)
    assert (user_comm[mixed.users] == item_comm[mixed.items]).mean() < 0.35


def test_generator_is_seeded(graph: Interactions) -> None:
    again = power_law_interactions(**GRAPH, seed=1)
    for name in ("users", "items", "timestamps"):
        np.testing.assert_array_equal(getattr(again, name), getattr(graph, name))
    other = power_law_interactions(**GRAPH, seed=2)
    assert len(other) != len(graph) or not np.array_equal(other.items, graph.items)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_users": 0}, "n_users"),
    ({"n_items": 2.5}, "n_items"),
    ({"n_edges": -1}, "n_edges"),
    ({"item_exponent": -0.5}, "item_exponent"),
    ({"user_exponent": float("nan")}, "user_exponent"),
    ({"communities": 0}, "communities"),
    ({"communities": 1001}, "communities"),
    ({"in_community": 1.5}, "in_community"),
    ({"n_edges": 2000 * 125 + 1}, "n_edges"),  # above n_users * the degree cap
])
def test_generator_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        power_law_interactions(**{**GRAPH, **kwargs})


# ---------------------------------------------------------------------- walks
def two_blocks() -> sp.csr_matrix:
    """Users 0-11 x items 0-5 and users 12-23 x items 6-11, random edges, no edge across; user 24
    and item 12 isolated."""
    rng = np.random.default_rng(0)
    dense = np.zeros((25, 13))
    dense[:12, :6] = rng.random((12, 6)) < 0.5
    dense[12:24, 6:12] = rng.random((12, 6)) < 0.5
    dense[np.arange(24), np.r_[np.arange(12) % 6, 6 + np.arange(12) % 6]] = 1  # every user, every item
    return sp.csr_matrix(dense)


def check_well_formed(nb: Neighbourhood, top_t: int) -> None:
    assert nb.index.shape == nb.weight.shape == (len(nb), top_t)
    assert nb.index.dtype == torch.int64 and nb.weight.dtype == torch.float32
    found = nb.index >= 0
    assert torch.equal(found, nb.weight > 0)  # padding is -1 with weight 0
    has = found.any(1)
    torch.testing.assert_close(nb.weight.sum(1)[has], torch.ones(int(has.sum())))
    assert (nb.weight[:, 1:] <= nb.weight[:, :-1]).all()  # most visited first
    assert (found[:, 1:] <= found[:, :-1]).all()  # padding only at the end
    for row in nb.index:
        kept = row[row >= 0]
        assert len(kept.unique()) == len(kept)


@pytest.mark.parametrize("kind", KINDS)
def test_walks_stay_in_their_block_and_are_well_formed(kind: str) -> None:
    r = two_blocks()
    nb = bipartite_neighbourhoods(r, kind, top_t=8)
    start_users, target_users = kind.startswith("user"), kind.endswith("user")
    n_start = r.shape[0] if start_users else r.shape[1]
    assert len(nb) == n_start
    check_well_formed(nb, 8)
    block_of = {True: lambda u: u >= 12, False: lambda i: i >= 6}
    for node in range(n_start - 1):
        kept = nb.index[node][nb.index[node] >= 0]
        assert len(kept) > 0
        assert (block_of[target_users](kept) == block_of[start_users](node)).all()
    if target_users == start_users:
        assert (nb.index[torch.arange(n_start - 1)] != torch.arange(n_start - 1)[:, None]).all()  # never itself
    assert (nb.index[-1] == -1).all() and (nb.weight[-1] == 0).all()  # the isolated node


def test_most_visited_neighbour_is_the_expected_one() -> None:
    # path 0 - 1 - 2 - 3 - 4: from 0 every walk passes 1 first, then 2
    src, dst = np.r_[0:4, 1:5], np.r_[1:5, 0:4]
    path = sp.csr_matrix((np.ones(8), (src, dst)), shape=(5, 5))
    nb = importance_neighbourhoods(torch.as_tensor(path.indptr), torch.as_tensor(path.indices),
                                   torch.tensor([0, 4]), top_t=2, restart_prob=0.3)
    assert nb.index.tolist() == [[1, 2], [3, 2]]
    # users 0-4 hold items {0, 1}, user 5 holds {0, 2, 3, 4}: item 0 shares 5 users with item 1 and
    # one with the others; user 5's own items come before item 1 (3 hops away, through item 0)
    rows, cols = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5], [0, 1] * 5 + [0, 2, 3, 4]
    r = sp.csr_matrix((np.ones(14), (rows, cols)), shape=(6, 5))
    assert bipartite_neighbourhoods(r, "item-item", top_t=1).index[0].item() == 1
    around = bipartite_neighbourhoods(r, "user-item", top_t=5, restart_prob=0.2, n_walks=50)
    assert set(around.index[5, :4].tolist()) == {0, 2, 3, 4} and around.index[5, 4] == 1
    # restart_prob 1: one-step walks, so a user's neighbours are exactly their items, equally weighted
    direct = bipartite_neighbourhoods(r, "user-item", top_t=5, restart_prob=1.0, n_walks=400)
    assert set(direct.index[5, :4].tolist()) == {0, 2, 3, 4} and direct.index[5, 4] == -1
    torch.testing.assert_close(direct.weight[5, :4], torch.full((4,), 0.25), atol=0.05, rtol=0)


def test_walks_are_seeded_and_independent_of_chunk(graph: Interactions) -> None:
    indptr, indices = bipartite_csr(graph)
    prebuilt = (indptr, indices, graph.n_users, graph.n_items)
    base = bipartite_neighbourhoods(prebuilt, "item-item", seed=3, n_walks=5, chunk=10_000)
    check_well_formed(base, 10)
    sample = torch.arange(0, graph.n_items, 37)
    for chunk in (1, 7):
        small = importance_neighbourhoods(indptr, indices, graph.n_users + sample, chunk=chunk, seed=3, n_walks=5,
                                          targets=(graph.n_users, graph.n_users + graph.n_items))
        assert torch.equal(small.index, base.index[sample]) and torch.equal(small.weight, base.weight[sample])
    assert not torch.equal(bipartite_neighbourhoods(prebuilt, "item-item", seed=4, n_walks=5).index, base.index)
    gen = [bipartite_neighbourhoods(prebuilt, "user-item", n_walks=2, seed=torch.Generator().manual_seed(9))
           for _ in range(2)]
    assert torch.equal(gen[0].index, gen[1].index)


def test_walks_take_int32_indices_and_graphs_without_edges() -> None:
    pair = importance_neighbourhoods(torch.tensor([0, 1, 2]), torch.tensor([1, 0], dtype=torch.int32), top_t=2)
    assert pair.index.tolist() == [[1, -1], [0, -1]] and pair.weight.tolist() == [[1, 0], [1, 0]]
    empty = importance_neighbourhoods(torch.zeros(4, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    assert (empty.index == -1).all() and (empty.weight == 0).all() and len(empty) == 3


def test_walks_reject_bad_arguments() -> None:
    r = two_blocks()
    indptr, indices = bipartite_csr(r)
    for kwargs, match in (({"n_walks": 0}, "n_walks"), ({"walk_length": 1.5}, "walk_length"),
                          ({"top_t": -1}, "top_t"), ({"chunk": 0}, "chunk"),
                          ({"restart_prob": 1.5}, "restart_prob"), ({"targets": (5, 100)}, "targets")):
        with pytest.raises(ValueError, match=match):
            importance_neighbourhoods(indptr, indices, **kwargs)
    with pytest.raises(ValueError, match="indptr"):
        importance_neighbourhoods(indptr[1:], indices)
    with pytest.raises(ValueError, match="start"):
        importance_neighbourhoods(indptr, indices, torch.tensor([len(indptr)]))
    with pytest.raises(ValueError, match="kind"):
        bipartite_neighbourhoods(r, "item-board")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_walks_on_cuda_equal_cpu(graph: Interactions) -> None:
    cpu = bipartite_neighbourhoods(graph, "user-item", n_walks=5)
    cuda = bipartite_neighbourhoods(graph, "user-item", n_walks=5, device="cuda")
    assert cuda.index.device.type == "cuda"
    check_well_formed(cuda.to("cpu"), 10)
    assert torch.equal(cuda.index.cpu(), cpu.index)
    torch.testing.assert_close(cuda.weight.cpu(), cpu.weight)
