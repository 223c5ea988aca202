"""ANN index and two-stage ranking: exact where it must be, candidates scored as the full score
would, new items reachable, settings checked, save/load."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.interactions import Interactions
from hybrid.models.base import FitData
from hybrid.retrieval import ranking
from hybrid.retrieval.ann import AnnIndex
from hybrid.retrieval.build import build_model
from hybrid.retrieval.ranking import top_k
from hybrid.retrieval.two_stage import TwoStage


def clustered(n: int = 3000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, d))
    return (centres[rng.integers(0, 30, n)] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def exact(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :k]


def test_flat_is_exact_and_ivf_scanning_every_cell_is_too() -> None:
    items, queries = clustered(), clustered(50, seed=1)
    truth = exact(items, queries, 10)
    assert np.array_equal(AnnIndex({"kind": "flat"}).build(items).search(queries, 10)[1], truth)
    full_scan = AnnIndex({"kind": "ivf", "nlist": 16, "nprobe": 16}).build(items)
    assert np.array_equal(full_scan.search(queries, 10)[1], truth)


@pytest.mark.parametrize("setting", [{"kind": "ivf", "nlist": 30, "nprobe": 6}, {"kind": "hnsw"},
                                     {"kind": "ivf", "nlist": 30, "nprobe": 6, "coarse": "hnsw"},
                                     {"kind": "ivf", "nlist": 30, "nprobe": 6, "sq8": True}])
def test_approximate_indexes_find_most_of_the_exact_top(setting) -> None:
    items, queries = clustered(), clustered(50, seed=1)
    truth = exact(items, queries, 10)
    found = AnnIndex(setting).build(items).search(queries, 10)[1]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall > 0.8


def test_sq8_codes_take_a_quarter_of_the_float_index() -> None:
    items = clustered(20_000, d=64)
    sizes = {sq8: len(AnnIndex({"kind": "ivf", "nlist": 30, "sq8": sq8}).build(items).to_bytes()) for sq8 in (False, True)}
    assert sizes[True] < 0.3 * sizes[False]


def test_an_index_survives_save_and_load_and_takes_new_items(tmp_path) -> None:
    items, queries = clustered(), clustered(5, seed=1)
    index = AnnIndex({"kind": "ivf", "nlist": 8, "nprobe": 8}).build(items)
    index.save(tmp_path)
    loaded = AnnIndex.load(tmp_path)
    assert np.array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])
    loaded.add(queries * 100)  # far out along each query: each becomes its query's best match
    assert loaded.size == len(items) + 5
    assert loaded.search(queries, 1)[1].ravel().tolist() == list(range(len(items), len(items) + 5))


@pytest.mark.parametrize(("params", "match"), [
    ({"retrieval": {"kind": "fuzzy"}}, "kind"),
    ({"retrieval": {"kind": "ann", "candidates": 0}}, "candidates"),
    ({"retrieval": {"kind": "ann", "index": {"nprobe": 0}}}, "nprobe"),
    ({"retrieval": {"kind": "ann", "colour": 1}}, "colour"),
])
def test_bad_retrieval_settings_name_the_field(params, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_model("gf_cf", params)


def interactions(seed: int = 0, n_users: int = 60, n_items: int = 40) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_items - 5, 6, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return Interactions.from_frame(frame, item_ids=pd.Index(range(n_items)))  # the last 5 items: no interactions


@pytest.mark.parametrize("name", ["gf_cf", "mf", "content"])
def test_candidate_scores_equal_the_full_scores_at_those_items(name) -> None:
    data = interactions()
    text = [f"item number {i} about topic {i % 4}" for i in range(data.n_items)] if name == "content" else None
    params = {"epochs": 3} if name == "mf" else {}
    model = build_model(name, params).fit(FitData(train=data, item_text=text))
    users = np.arange(10)
    history = data.matrix()[users]
    candidates = np.random.default_rng(1).integers(0, data.n_items, (10, 7))
    full = model.score(users, history)
    got = model.score_candidates(users, history, candidates)
    assert torch.allclose(got, full.gather(1, torch.as_tensor(candidates)), atol=1e-5)
    shared = np.array([3, 0, 17, 38])  # the same items for every row (score_columns)
    assert torch.allclose(model.score_columns(users, history, shared), full[:, shared], atol=1e-5)
    assert model.has_factors == (model.item_factors() is not None)


def test_two_stage_with_room_for_every_item_ranks_exactly_and_reaches_new_items() -> None:
    data = interactions()
    params = {"retrieval": {"kind": "ann", "index": {"kind": "flat"}, "candidates": data.n_items, "popular": 0,
                            "newest": 0}}
    two_stage = build_model("gf_cf", params).fit(FitData(train=data))
    assert isinstance(two_stage, TwoStage)
    exact_model = build_model("gf_cf").fit(FitData(train=data))
    users = np.arange(data.n_users)
    assert np.array_equal(top_k(two_stage, users, data.matrix(), 5)[0], top_k(exact_model, users, data.matrix(), 5)[0])

    narrow = build_model("gf_cf+ann", {"retrieval": {"candidates": 3, "popular": 2, "newest": 5}}).fit(FitData(train=data))
    scores = narrow.score(users[:4], data.matrix()[:4])
    finite = torch.isfinite(scores)
    assert finite[:, -5:].all()  # the five newest (interaction-free) items are always candidates
    assert (finite.sum(1) <= 3 + data.matrix()[:4].getnnz(axis=1).max() + 2 + 5).all()
    assert narrow.chosen()["retrieval"]["candidates"] == 3


def test_a_model_without_item_vectors_refuses_ann_with_the_reason() -> None:
    with pytest.raises(ValueError, match="no item vectors"):
        build_model("ease+ann").fit(FitData(train=interactions()))


def test_the_hybrid_scores_candidates_as_its_full_rows_do(tiny_model) -> None:
    """With every item in the reference sample (a small catalogue), the candidate path is exact:
    for trained users and for a new user who names two items."""
    model = tiny_model[0].model_
    n = model.text_.shape[0]
    history = tiny_model[0].history_
    users = np.arange(6)
    candidates = np.stack([np.random.default_rng(u).choice(n, 7, replace=False) for u in users])
    full = model.score(users, history[users])
    picked = full.gather(1, torch.as_tensor(candidates))
    assert torch.allclose(model.score_candidates(users, history[users], candidates), picked, atol=1e-4)
    named = history[[0]].copy()
    named.data[:] = 1
    new = np.array([-1])
    fresh = model.score_users(new, named).gather(1, torch.as_tensor(candidates[:1]))
    assert torch.allclose(model.score_candidates(new, named, candidates[:1]), fresh, atol=1e-4)


def test_a_two_stage_hybrid_recommends_as_exact_saves_its_index_and_takes_new_items(tmp_path) -> None:
    from conftest import two_tastes

    from hybrid import HybridRecommender

    frame, text = two_tastes()
    exact = HybridRecommender({"neighbours": 5}, device="cpu").fit(frame, text)
    staged = HybridRecommender({"neighbours": 5}, device="cpu",
                               retrieval={"kind": "ann", "index": {"kind": "flat"}, "candidates": 30}).fit(frame, text)
    users = ["u0", "u1", "u7"]
    # An exact index with room for every item: the same lists as scoring every item.
    assert (staged.recommend(users, k=5)[0] == exact.recommend(users, k=5)[0]).all()
    staged.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m", device="cpu")
    assert loaded.stage_ is not None and loaded.stage_.index_.size == staged.stage_.index_.size
    assert (loaded.recommend(users, k=5)[0] == staged.recommend(users, k=5)[0]).all()
    serving = loaded.copy()
    serving.add_items({"s_new": "A documentary about a crewed mission to Mars and its rocket launch"})
    assert serving.stage_.index_.size == loaded.stage_.index_.size + 1  # the original's index is untouched
    new = serving.item_ids_.get_loc("s_new")
    assert new in serving.stage_.bound(serving.model_).candidates(np.array([0]), serving.history_[[0]])[0]
    assert "s_new" in serving.recommend("u0", k=16)[0]
    narrow = staged.copy()
    narrow.stage_ = copy.copy(staged.stage_)
    narrow.stage_.config = dataclasses.replace(staged.stage_.config, candidates=2)
    with pytest.raises(ValueError, match=r"retrieval\.candidates"):
        narrow.recommend("u0", k=3)


def test_a_batch_of_scores_stays_within_the_memory_bound(monkeypatch) -> None:
    """A catalogue too wide for ``batch_size`` users at once is ranked in smaller batches, with the same result."""
    data = interactions()
    model = build_model("mf", {"epochs": 3}).fit(FitData(train=data))
    users, history = np.arange(data.n_users), data.matrix()
    expected = ranking.top_k_masked(model, users, history, 5, {"all": None}, tie_seed=0)["all"]
    rows_scored = []
    score = model.score
    monkeypatch.setattr(model, "score", lambda u, h: rows_scored.append(len(u)) or score(u, h))
    monkeypatch.setattr(ranking, "MAX_SCORE_ENTRIES", 3 * data.n_items + 1)
    got = ranking.top_k_masked(model, users, history, 5, {"all": None}, tie_seed=0)["all"]
    assert max(rows_scored) == 3 and sum(rows_scored) == data.n_users
    assert np.array_equal(got[0], expected[0]) and np.allclose(got[1], expected[1])


def test_the_newest_items_are_the_latest_to_arrive_not_the_highest_indices() -> None:
    """Stage 1's "newest" source: items with no interactions (new arrivals), then those whose first
    interaction is latest; an item's index (here: the sorted order of its id) says nothing of its age."""
    rng = np.random.default_rng(0)
    rows = [(u, int(i), int(rng.integers(0, 1000))) for u in range(60) for i in rng.choice(np.arange(3, 35), 6, replace=False)]
    rows += [(u, u % 3, 2000 + u) for u in range(0, 60, 4)]  # items 0, 1, 2 first bought last of all
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    data = Interactions.from_frame(frame, item_ids=pd.Index(range(40)))  # 35-39: no interactions yet
    stage = build_model("gf_cf+ann", {"retrieval": {"candidates": 1, "popular": 0, "newest": 8}}).fit(FitData(train=data))
    users = np.arange(data.n_users)
    union = stage.candidates(users, data.matrix())
    for row in union:
        assert {0, 1, 2, 35, 36, 37, 38, 39} <= set(row.tolist())
