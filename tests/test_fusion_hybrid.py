"""The hybrid's rehearsed cold start (pseudo-new validation), its refit, and count-aware text use."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DATA_ROOT, data_folder
from test_recommender import COOKING, SPACE

from hybrid.config import load_config
from hybrid.data.buckets import bucket_of
from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import Interactions
from hybrid.evaluation.evaluate import prepare
from hybrid.fusion.rehearsal import MIN_NEW_POSITIVES, cold_validation, temporal_validation
from hybrid.models import make_model
from hybrid.models.base import FitData

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def timed_data(n_users: int = 40, n_items: int = 30, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = [(u, i, int(rng.integers(0, 50)) + 40 * i) for u in range(n_users)  # item i first seen ~40 i
            for i in rng.choice(n_items, 8, replace=False)]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


def test_random_rehearsal_holds_pseudo_new_items_out_of_the_fit_graph() -> None:
    data = timed_data()
    split = cold_validation(data, None, 0.2, "random", seed=0)
    new = np.flatnonzero(split.pseudo_new)
    assert len(new) == round(0.2 * (data.item_counts() > 0).sum())
    assert split.fit.item_counts()[new].sum() == 0  # removed from the graph entirely
    # every interaction of a pseudo-new item is a validation positive
    assert split.positives[:, new].nnz == data.matrix()[:, new].nnz
    # positives and fit never overlap, and together they are exactly the input
    fit = split.fit.matrix()
    assert fit.multiply(split.positives).nnz == 0
    assert ((fit + split.positives) != data.matrix()).nnz == 0


def test_time_rehearsal_cuts_the_timeline_and_new_items_are_first_seen_after() -> None:
    data = timed_data()
    split = cold_validation(data, None, 0.3, "time", seed=0)
    cut = split.fit.timestamps.max()
    positives = split.positives.tocoo()
    frame = data.to_frame().set_index(["user", "item"])["timestamp"]
    times = frame.loc[list(zip(data.user_ids[positives.row], data.item_ids[positives.col], strict=True))]
    assert (times.to_numpy() > cut).all()
    assert split.pseudo_new.any()
    assert (split.fit.item_counts()[split.pseudo_new] == 0).all()


def test_time_rehearsal_with_too_few_new_items_falls_back_to_random_and_says_so(caplog) -> None:
    rows = [(u, i, t) for u in range(30) for t, i in enumerate(range(u % 5, u % 5 + 4))]  # no late items
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    with caplog.at_level(logging.INFO, logger="hybrid.fusion.rehearsal"):
        split = cold_validation(data, None, 0.2, "time", seed=0)
    assert f"at least {MIN_NEW_POSITIVES} wanted" in caplog.text and "random" in caplog.text
    assert split.pseudo_new.any() and split.fit.item_counts()[split.pseudo_new].sum() == 0 and split.by == "random"


def test_time_rehearsal_with_a_burst_of_few_late_users_falls_back_to_random(caplog) -> None:
    """Many late items, bought after the cut by 3 of the 40 users with history and by 20 users who
    arrive then (they have no history to learn a gate from): too few people to fit a gate on."""
    rows = [(u, i, t) for u in range(40) for t, i in enumerate(range(u % 5, u % 5 + 6))]
    rows += [(u, 100 + i, 1000 + i) for u in range(3) for i in range(30)]
    rows += [(u, 200 + u % 7, 2000) for u in range(40, 60)]
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    with caplog.at_level(logging.INFO, logger="hybrid.fusion.rehearsal"):
        split = cold_validation(data, None, 0.2, "time", seed=0)
    assert split.by == "random" and "from 3 of 60 users" in caplog.text


def test_count_buckets_follow_the_reported_buckets() -> None:
    assert bucket_of(np.array([0, 1, 4, 5, 19, 20, 99, 100, 10_000])).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_validation_on_real_data_holds_pseudo_new_items_and_nothing_of_the_test() -> None:
    data_folder("ml-100k")
    config = load_config(CONFIGS / "ml100k_cold_items.yaml")
    prepared = prepare(load_dataset("ml-100k", str(DATA_ROOT)), config, torch.device("cpu"))
    data = prepared.fit_data
    split = cold_validation(data.train, data.valid, 0.2, "random", data.seed)
    assert split.pseudo_new.sum() > 100
    assert split.positives.multiply(prepared.test).nnz == 0  # nothing of the test split
    assert split.fit.matrix().multiply(prepared.test).nnz == 0
    test_cold = data.train.item_counts() == 0
    assert not (split.pseudo_new & test_cold).any()  # pseudo-new items come from the warm ones


def planted(sparse_users: tuple[int, int] = (0, 1)) -> tuple[FitData, pd.Index]:
    """Space and cooking fans (even / odd users) pick items of their taste with Zipf-like
    popularity; item "s_sparse" has space text and just two interactions, from one fan of each
    taste, so only its text says who it is for."""
    rng = np.random.default_rng(1)
    popularity = 1.0 / np.arange(1, 11)
    items = pd.Index([f"s{i}" for i in range(10)] + [f"c{i}" for i in range(10)] + ["s_sparse"])
    text = SPACE + COOKING + ["Starship battles and alien empires across a galaxy"]
    rows = []
    for u in range(80):
        taste = "s" if u % 2 == 0 else "c"
        for t, i in enumerate(rng.choice(10, 5, replace=False, p=popularity / popularity.sum())):
            rows.append((u, f"{taste}{i}", t))
    rows += [(u, "s_sparse", 5) for u in sparse_users]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return FitData(train=Interactions.from_frame(frame, item_ids=items), item_text=text, seed=0), items


def test_an_item_with_two_interactions_is_ranked_by_its_text() -> None:
    data, items = planted()
    model = make_model("hybrid", {"neighbours": 5, "valid_new_by": "random"}).fit(data)
    assert data.train.item_counts()[items.get_loc("s_sparse")] == 2
    users = np.arange(2, 80)
    history = data.train.matrix()[users]
    scores = model.score(users, history)
    scores[torch.as_tensor(history.toarray() > 0)] = -torch.inf
    rank = (scores > scores[:, [items.get_loc("s_sparse")]]).sum(1)  # 0 = first
    space, cooking = rank[users % 2 == 0].float().mean(), rank[users % 2 == 1].float().mean()
    assert space + 2 < cooking  # space fans see it well above where cooking fans do


def test_refit_trains_the_graph_half_on_every_interaction() -> None:
    data, _ = planted()
    half = np.arange(len(data.train)) % 5 == 0
    t = data.train
    valid = Interactions(t.user_ids, t.item_ids, t.users[half], t.items[half], t.weights[half], t.timestamps[half])
    train = Interactions(t.user_ids, t.item_ids, t.users[~half], t.items[~half], t.weights[~half], t.timestamps[~half])
    fit = FitData(train=train, valid=valid, item_text=data.item_text, seed=0)
    refit = make_model("hybrid", {"neighbours": 5, "warm_model": "gf_cf"}).fit(fit)
    assert (refit.warm_.graph_.matrix != t.matrix()).nnz == 0  # everything: train and validation
    assert (refit.counts_ == t.item_counts()).all()
    kept = make_model("hybrid", {"neighbours": 5, "warm_model": "gf_cf", "refit": False}).fit(fit)
    assert kept.warm_.graph_.matrix.nnz < train.matrix().nnz  # the rehearsal graph only


def test_bad_fusion_settings_name_the_field() -> None:
    data, _ = planted()
    for params, match in (({"valid_new_share": 1.5}, "valid_new_share must be in"),
                          ({"warm_model": "hybrid"}, "warm_model must be a graph model"),
                          ({"steps": 0}, "steps must be >= 1")):
        with pytest.raises(ValueError, match=match):
            make_model("hybrid", params).fit(data)
    with pytest.raises(ValueError, match="hybrid needs item text"):
        make_model("hybrid").fit(FitData(train=data.train))


def test_a_random_rehearsal_is_weighted_to_the_new_items_share_of_the_latest_period() -> None:
    """A random rehearsal holds every interaction of its pseudo-new items; where the data's latest
    period says new items take little of what comes next, their positives are weighted down to it."""
    rows = [(u, i, t) for u in range(40) for t, i in enumerate(range(u % 5, u % 5 + 6))]
    rows += [(u, 100 + i, 1000 + i) for u in range(3) for i in range(30)]
    rows += [(u, 200 + u % 7, 2000) for u in range(40, 60)]
    rows += [(u, 9, 1500) for u in range(4)]  # late interactions on an old item
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    split = cold_validation(data, None, 0.2, "time", seed=0)  # falls back to random (few late users)
    late = cold_validation(data, None, 0.2, "time", seed=0)
    assert split.by == "random" and split.new_weight > 0
    carved = split.positives[:, split.pseudo_new].nnz / split.positives.nnz
    weighted = carved * split.new_weight / (carved * split.new_weight + 1 - carved)
    timed = temporal_validation(data, None, 0.2)
    natural = timed.positives[:, timed.pseudo_new].nnz / timed.positives.nnz
    assert weighted == pytest.approx(natural, rel=1e-6)  # the odds ratio gives the natural share
    assert late.new_weight == split.new_weight
    assert cold_validation(data, None, 0.2, "random", seed=0).new_weight == 1.0  # nothing tells it: 1


def test_text_neighbours_through_ivf_match_the_exact_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid.fusion import neighbours as signals

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    points = centres[rng.integers(0, 40, 3000)] + 0.5 * rng.normal(size=(3000, 32))
    vectors = torch.nn.functional.normalize(torch.as_tensor(points, dtype=torch.float32), dim=1)
    exact = signals.text_neighbours(vectors, 10)
    monkeypatch.setattr(signals, "EXACT_KNN_MAX", 100)
    approx = signals.text_neighbours(vectors, 10)
    assert approx.diagonal().sum() == 0 and np.diff(approx.indptr).max() <= 10
    assert exact.multiply(approx > 0).getnnz() / exact.getnnz() >= 0.95
    shared = exact.multiply(approx > 0)
    assert np.allclose(shared.data, approx.multiply(exact > 0).data, atol=1e-5)  # same cosines where both have the pair
