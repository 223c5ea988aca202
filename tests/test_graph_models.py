"""Contract tests run against every BPR model (mf, ngcf, lightgcn) on CPU and, where present, CUDA;
plus the graph, the propagation rule, the trainer's guards and early stopping."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.interactions import Interactions
from hybrid.graph import adjacency as graph
from hybrid.graph.adjacency import normalized_adjacency, propagate, propagate_rows
from hybrid.models import FitData, make_model
from hybrid.models.bpr import heldout_metrics
from hybrid.models.embedding import EmbeddingRecommender
from hybrid.models.graph_models import MF, NGCF, LightGCNRecommender
from hybrid.models.train import TrainConfig, fit_bpr
from hybrid.retrieval.ranking import top_k

MODELS = ["mf", "ngcf", "lightgcn"]
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]
# Small, fast settings for the planted data: a few hundred triples per epoch.
FAST = {"dim": 16, "lr": 0.05, "batch_size": 32, "epochs": 100, "reg": 1e-2, "show_progress": False}
GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 2, 12, 6


def planted() -> tuple[Interactions, dict[int, int], list[str]]:
    """Two communities (users 0-11 like items 0-5, users 12-23 like items 6-11); each user's
    held-out item is one of its own community's, so the right answer is known. Two extra users
    ("cold", "empty") have no training interactions.

    Returns:
        training interactions, held-out item index per user index, all user ids.
    """
    rows, held = [], {}
    for g in range(GROUPS):
        for j in range(USERS_PER_GROUP):
            user = g * USERS_PER_GROUP + j
            hidden = g * ITEMS_PER_GROUP + j % ITEMS_PER_GROUP
            held[user] = hidden
            rows += [(user, g * ITEMS_PER_GROUP + i) for i in range(ITEMS_PER_GROUP) if g * ITEMS_PER_GROUP + i != hidden]
    frame = pd.DataFrame(rows, columns=["user", "item"]).astype({"user": str})
    user_ids = [str(u) for u in range(GROUPS * USERS_PER_GROUP)] + ["cold", "empty"]
    train = Interactions.from_frame(frame, user_ids=user_ids, item_ids=range(GROUPS * ITEMS_PER_GROUP))
    return train, {int(train.user_index([str(u)])[0]): int(train.item_index([i])[0]) for u, i in held.items()}, user_ids


@functools.cache
def fitted_default(name: str, device: str) -> tuple[EmbeddingRecommender, Interactions]:
    """One fit per (model, device), shared by the tests that only read the fitted model."""
    return fitted(name, device)


def fitted(name: str, device: str = "cpu", seed: int = 0, **params: object) -> tuple[EmbeddingRecommender, Interactions]:
    train, _, _ = planted()
    model = make_model(name, {**FAST, **params})
    model.fit(FitData(train=train, device=torch.device(device), seed=seed))
    assert isinstance(model, EmbeddingRecommender)
    return model, train


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODELS)
def test_ranks_the_held_out_item_first(name: str, device: str) -> None:
    model, train = fitted_default(name, device)
    _, held, _ = planted()
    users = np.array(sorted(held))
    top, _ = top_k(model, users, train.matrix(), k=1)
    assert top[:, 0].tolist() == [held[u] for u in users]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODELS)
def test_batch_scores_equal_one_user_scores_including_folded_in_users(name: str, device: str) -> None:
    model, train = fitted_default(name, device)
    history = train.matrix().tolil()
    cold, empty = train.user_index(["cold", "empty"])
    history[cold, [0, 1, 2]] = 1.0  # revealed at scoring time, never trained on
    history = history.tocsr()
    users = np.arange(train.n_users)
    batch = model.score(users, history[users])
    for u in users:
        torch.testing.assert_close(model.score(users[u : u + 1], history[u : u + 1])[0], batch[u])
    assert batch.shape == (train.n_users, train.n_items) and batch.device.type == device
    # Fold-in: the cold user named community-0 items, so community-0 items outrank community-1 ones.
    scores = batch[cold].cpu()
    assert scores[3:ITEMS_PER_GROUP].min() > scores[ITEMS_PER_GROUP:].max()
    # No history at all: the population prior, not a tie of every item.
    assert batch[empty].std() > 0
    # PyG-style forward on pairs agrees with score for trained users.
    pairs = model.module_(torch.as_tensor(users[:4], device=device), torch.arange(4, device=device).repeat(4, 1))
    torch.testing.assert_close(pairs, batch[:4, :4])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODELS)
def test_save_load_scores_identically(name: str, device: str, tmp_path: Path) -> None:
    model, train = fitted_default(name, device)
    model.save(tmp_path / name)
    loaded = type(model).load(tmp_path / name, device=device)
    assert loaded.config == model.config
    history = train.matrix()
    users = np.arange(train.n_users)
    assert torch.equal(loaded.score(users, history), model.score(users, history))


@pytest.mark.parametrize("name", MODELS)
def test_cpu_fit_repeats_with_a_seed(name: str) -> None:
    a, _ = fitted(name, seed=7, epochs=5, sampler="curriculum", curriculum_warmup=2, hard_pool=3)
    b, _ = fitted(name, seed=7, epochs=5, sampler="curriculum", curriculum_warmup=2, hard_pool=3)
    c, _ = fitted(name, seed=8, epochs=5, sampler="curriculum", curriculum_warmup=2, hard_pool=3)
    assert torch.equal(a.item_embeddings_, b.item_embeddings_)
    assert torch.equal(a.user_embeddings_, b.user_embeddings_)
    assert not torch.equal(a.item_embeddings_, c.item_embeddings_)


def test_load_refuses_another_models_folder(tmp_path: Path) -> None:
    model, _ = fitted("mf", epochs=1)
    model.save(tmp_path)
    with pytest.raises(ValueError, match="holds a 'mf' model"):
        LightGCNRecommender.load(tmp_path)


def test_unknown_and_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        make_model("lightgcn", {"layer": 2})
    train, _, _ = planted()
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        make_model("mf", {"batch_size": 0}).fit(FitData(train=train))
    with pytest.raises(ValueError, match="dropout"):
        make_model("ngcf", {"dropout": 1.5}).fit(FitData(train=train))


def test_nan_loss_stops_training_with_a_clear_error() -> None:
    train, _, _ = planted()
    module = MF(train.n_users, train.n_items, 4)
    with torch.no_grad():
        module.item_embedding.weight[0] = math.nan
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1"):
        fit_bpr(module, train, TrainConfig(epochs=3, show_progress=False))


def test_early_stopping_keeps_the_best_validated_weights() -> None:
    train, held, user_ids = planted()
    valid_frame = pd.DataFrame({"user": [user_ids[u] for u in held], "item": list(held.values())})
    valid = Interactions.from_frame(valid_frame, user_ids=user_ids, item_ids=range(train.n_items))
    module = MF(train.n_users, train.n_items, 8)
    config = TrainConfig(**{**FAST, "dim": 8, "epochs": 100, "eval_every": 2, "patience": 2})
    result = fit_bpr(module, train, config, valid=valid)
    evaluated = [r["valid_recall@20"] for r in result.history if "valid_recall@20" in r]
    assert len(evaluated) >= 2
    best = max(evaluated)
    kept = heldout_metrics(module, train.matrix(), valid.matrix())["recall@20"]
    assert kept == pytest.approx(best)
    assert result.history[result.best_epoch - 1]["valid_recall@20"] == best


def test_adjacency_is_the_symmetric_normalised_graph() -> None:
    users, items = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 1, 2])
    adj = normalized_adjacency(users, items, n_users=4, n_items=3).to_dense().numpy()
    dense = np.zeros((7, 7), np.float32)
    dense[users, 4 + items] = dense[4 + items, users] = 1
    deg = dense.sum(1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0)
    np.testing.assert_allclose(adj, inv[:, None] * dense * inv[None, :], rtol=1e-6)
    assert not adj[3].any()  # user 3 has no interactions: an empty row


def test_propagate_matches_pyg_lightgcn_and_dense_gradients() -> None:
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    users, items = np.array([0, 0, 1, 2, 2, 3]), np.array([0, 1, 1, 0, 2, 2])
    adj = normalized_adjacency(users, items, n_users=4, n_items=3)
    x = torch.randn(7, 5, requires_grad=True)
    out = propagate(adj, x, num_layers=3)
    pyg = PyGLightGCN(num_nodes=7, embedding_dim=5, num_layers=3)
    with torch.no_grad():
        pyg.embedding.weight.copy_(x)
    edge_index = torch.as_tensor(np.stack([np.r_[users, 4 + items], np.r_[4 + items, users]]))
    torch.testing.assert_close(out, pyg.get_embedding(edge_index))
    weights = torch.randn(7, 5)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    dense = adj.to_dense()
    expected = sum(torch.linalg.matrix_power(dense, k) for k in range(4)) @ weights / 4
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("share", [0.0, 1.0], ids=["full-fallback", "partial"])
@pytest.mark.parametrize("layers", [0, 1, 3])
def test_propagate_rows_equals_full_propagation_and_its_gradient(
    layers: int, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph, "PARTIAL_MAX_SHARE", share)
    users, items = np.array([0, 0, 1, 2, 2, 3, 3]), np.array([0, 1, 1, 0, 2, 2, 1])
    adj = normalized_adjacency(users, items, n_users=5, n_items=3)
    x = torch.randn(8, 4, requires_grad=True)
    rows = torch.tensor([0, 5, 5, 7, 3, 4])  # repeats and an isolated node (user 4)
    weights = torch.randn(len(rows), 4)
    full = propagate(adj, x, layers)[rows]
    (expected,) = torch.autograd.grad((full * weights).sum(), x)
    part = propagate_rows(adj, x, layers, rows)
    (grad,) = torch.autograd.grad((part * weights).sum(), x)
    torch.testing.assert_close(part, full)
    torch.testing.assert_close(grad, expected)


def test_ngcf_concatenates_layer_outputs() -> None:
    train, _, _ = planted()
    adj = normalized_adjacency(train.users, train.items, train.n_users, train.n_items)
    users, items = NGCF(train.n_users, train.n_items, 8, 2, adj, dropout=0.0).embeddings()
    assert users.shape == (train.n_users, 24) and items.shape == (train.n_items, 24)
    torch.testing.assert_close(items[:, 8:16].norm(dim=1), torch.ones(train.n_items))
