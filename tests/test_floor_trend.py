"""Trending in the hybrid (its window chosen on the rehearsal) and the floor for zero-history users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import test_new_users
import torch

from hybrid.data.interactions import Interactions
from hybrid.fusion.floor import ZeroHistoryPrior, prior_scores
from hybrid.fusion.model import FusionHybrid
from hybrid.fusion.rehearsal import ColdValidation
from hybrid.fusion.signals import FEATURES
from hybrid.fusion.trend import choose_window, recent_counts

fitted = test_new_users.fitted  # the planted hybrid of the new-user tests, one fixture for both modules
DAY = 86_400
T0 = 1_600_000_000


def test_the_trending_window_is_the_one_that_recalls_what_comes_next() -> None:
    old = [(u, i, T0) for u in range(10, 15) for i in range(25)]  # 25 items bought 5 times long ago
    recent = [(u, 25, T0 + 99 * DAY) for u in range(5, 8)]  # one item bought 3 times lately
    fit = Interactions.from_frame(pd.DataFrame(old + recent, columns=["user", "item", "timestamp"]),
                                  user_ids=range(15), item_ids=range(26))
    positives = sp.csr_matrix((np.ones(5, np.float32), (range(5), [25] * 5)), shape=(15, 26))
    days, recalls = choose_window(ColdValidation(fit, positives, np.zeros(26, bool), "time"))
    assert days is not None and days < 99 and recalls["365d"] < recalls[f"{days:g}d"] == 1.0
    assert recent_counts(fit, days)[25] == 3 and recent_counts(fit, days)[:25].sum() == 0
    untimed = Interactions(fit.user_ids, fit.item_ids, fit.users, fit.items, fit.weights, None)
    assert choose_window(ColdValidation(untimed, positives, np.zeros(26, bool))) == (None, {})
    assert torch.equal(prior_scores(untimed, "trending", 7.0), prior_scores(untimed, "popularity", None))


def test_trending_is_a_gate_signal_and_the_floor_records_what_it_judged(fitted) -> None:
    _, model = fitted
    assert "trending" in FEATURES and model.recent_ is not None and model.trend_days_ is not None
    floor = model.chosen()["new users"]["zero-history floor"]
    figures = floor["recall@20 + ndcg@20"]
    assert {"gate", "popularity"} <= set(figures) and any(name.startswith("trending") for name in figures)
    # the planted side information tells astronomers from chefs; popularity cannot
    assert floor["zero-history users ranked by"] == "gate" and figures["gate"] > figures["popularity"]


def test_a_prior_that_beat_the_gate_ranks_zero_history_users_only(fitted, tmp_path) -> None:
    _, model = fitted
    scores = torch.arange(20, dtype=torch.float32)  # item 19 first, then 18, ...
    original = model.new_users_.prior
    model.new_users_.prior = ZeroHistoryPrior("popularity", None, scores, {"zero-history users ranked by": "popularity"})
    try:
        empty = sp.csr_matrix((1, 20), dtype=np.float32)
        new_top = torch.topk(model.score_users(np.array([-1]), empty), 5, dim=1).indices[0].tolist()
        assert new_top == [19, 18, 17, 16, 15]
        few = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], [0, 1])), shape=(1, 20))
        with_items = torch.topk(model.score_users(np.array([-1]), few), 5, dim=1).indices[0].tolist()
        assert with_items != new_top  # a user with items keeps the gate
        model.save(tmp_path / "m")
        loaded = FusionHybrid.load(tmp_path / "m")
        assert loaded.new_users_.prior.kind == "popularity"
        assert torch.topk(loaded.score_users(np.array([-1]), empty), 5, dim=1).indices[0].tolist() == new_top
        assert np.array_equal(loaded.recent_, model.recent_) and loaded.trend_days_ == model.trend_days_
    finally:
        model.new_users_.prior = original


def test_a_time_rehearsal_with_few_late_arrivals_borrows_pseudo_new_items_for_its_late_users() -> None:
    from hybrid.fusion.rehearsal import MIN_NEW_ITEM_SHARE, with_random_new

    rng = np.random.default_rng(0)
    rows = [(u, int(i), T0) for u in range(40) for i in rng.choice(50, 10, replace=False)]
    fit = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]),
                                  user_ids=range(40), item_ids=range(51))
    # users 0-9 come back late: each buys the one late arrival (item 50) and two warm items
    users, items = np.repeat(np.arange(10), 3), np.tile([50, 48, 49], 10)
    late = sp.csr_matrix((np.ones(30, np.float32), (users, items)), shape=(40, 51))
    timed = ColdValidation(fit, late, np.arange(51) == 50, "time")
    assert timed.pseudo_new.sum() < MIN_NEW_ITEM_SHARE * 50
    rehearsal = with_random_new(timed, 0.2, seed=0)
    borrowed = rehearsal.pseudo_new & ~timed.pseudo_new
    assert borrowed.sum() == 10 and rehearsal.fit.item_counts()[borrowed].sum() == 0  # gone from the fit graph
    rows_with_positives = np.flatnonzero(rehearsal.positives.getnnz(axis=1) > 0)
    assert set(rows_with_positives) <= set(range(10))  # only the late users' interactions become positives
    assert 0 < rehearsal.new_weight < 1  # weighted back to the late period's own share of new items


def test_trending_replaces_popularity_only_when_its_lead_exceeds_the_judges_noise() -> None:
    from hybrid.fusion.floor import TRENDING_SE, beats

    rng = np.random.default_rng(0)
    base = rng.random(30)
    noisy = base + np.tile([0.32, -0.28], 15)  # a lead of 0.02 that the judges' spread swamps
    clear = base + 0.02 + rng.normal(0, 0.01, 30)  # the same lead, shown by every judge
    assert beats(noisy, base) < TRENDING_SE < beats(clear, base)
    assert noisy.mean() > base.mean()  # a plain comparison of means would have taken the noisy one
    assert beats(base, base) == 0.0
