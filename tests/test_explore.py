"""Exploration slots (hybrid.fusion.explore) and the replay that measures them (hybrid.evaluation.replay)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import two_tastes

from hybrid import HybridRecommender
from hybrid.evaluation.replay import periods_of, replay
from hybrid.fusion.explore import ExploreConfig, eligible_items, explore


def test_config_refuses_bad_values_when_built() -> None:
    for bad in ({"slots": -1}, {"policy": "greedy"}, {"max_count": 0}, {"width": -1.0}):
        with pytest.raises(ValueError, match=r"explore\."):
            ExploreConfig(**bad)


@pytest.mark.parametrize("policy", ["thompson", "ucb", "epsilon"])
def test_slots_go_to_eligible_unseen_items_at_the_end(policy: str) -> None:
    counts = np.array([50, 40, 30, 20, 0, 1, 2, 3])
    eligible = eligible_items(counts, ExploreConfig())
    assert eligible.tolist() == [4, 5, 6, 7]
    top = np.array([[0, 1, 2, 3], [1, 4, 0, 2]])
    top_scores = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]], np.float32)
    wide = torch.tensor([[0.5, 0.4, -torch.inf, 0.1], [0.9, 0.2, 0.3, -torch.inf]])  # -inf: seen
    items, _, flags = explore(top, top_scores, eligible, wide, counts, ExploreConfig(slots=2, policy=policy))
    assert flags[:, :2].sum() == 0 and flags[:, 2:].all()
    assert items[:, :2].tolist() == top[:, :2].tolist()  # the plain list keeps its first k - m places
    assert set(items[0, 2:]) <= {4, 5, 7} and 6 not in items[0]
    assert set(items[1, 2:]) <= {5, 6} and 7 not in items[1]  # 4 is in the kept places already
    assert all(len(set(row)) == len(row) for row in items.tolist())


def test_ucb_prefers_the_less_known_item_at_equal_score() -> None:
    # Items 1 (no interaction) and 2 (four) score alike; a third eligible item gives the scores a spread.
    counts = np.array([100, 0, 4, 4])
    items, _, flags = explore(np.array([[0, 3]]), np.array([[2.0, 1.0]], np.float32), np.array([1, 2, 3]),
                              torch.tensor([[1.0, 1.0, 0.0]]), counts, ExploreConfig(slots=1, policy="ucb"))
    assert items[0].tolist() == [0, 1] and flags[0].tolist() == [False, True]


def test_fewer_eligible_items_than_slots_are_filled_by_the_ranking() -> None:
    counts = np.array([50, 40, 30, 0])
    items, _, flags = explore(np.array([[0, 1, 2]]), np.ones((1, 3), np.float32), np.array([3]),
                              torch.tensor([[-torch.inf]]), counts, ExploreConfig(slots=2))
    assert items[0].tolist() == [0, 1, 2] and not flags.any()


def test_recommend_with_explore_flags_slots_and_respects_items(tiny_model) -> None:
    rec, _ = tiny_model
    plain, _ = rec.recommend(["u0", "u1"], k=5)
    off = rec.recommend(["u0", "u1"], k=5, explore={"slots": 0})
    assert (off[0] == plain).all() and not off[2].any()
    items, _, flags = rec.recommend(["u0", "u1"], k=5, explore={"slots": 2, "policy": "ucb"})
    counts = dict(zip(rec.item_ids_, rec.model_.counts_, strict=True))
    assert all(counts[i] < 5 for i in items[flags]) and flags.any()
    seen = rec.history_[rec.user_ids_.get_indexer(["u0", "u1"])].toarray() > 0
    assert not any(seen[r, rec.item_ids_.get_loc(i)] for r in range(2) for i in items[r])
    allowed = ["s9", "c9", "s1", "s2", "s3", "s4", "s5", "s6"]
    one, _, one_flags = rec.recommend("u0", k=4, items=allowed, explore={"slots": 1})
    assert set(one) <= set(allowed) and one_flags.shape == (4,)


def planted_replay(n_users: int = 40, steps: int = 6) -> tuple[pd.DataFrame, dict[str, str], list[pd.DataFrame]]:
    """Two tastes and six new items: five "decoys" nobody buys and "n0", which every space fan buys
    each step; all six have the same bland text, so nothing but exposure can tell them apart."""
    frame, text = two_tastes(n_users)
    text = {**text, **{f"n{i}": f"Catalogue entry {i}: a product" for i in range(6)}}
    rng = np.random.default_rng(1)
    periods = []
    for step in range(steps):
        rows = []
        for u in range(n_users):
            taste = "s" if u % 2 == 0 else "c"
            rows += [(f"u{u}", f"{taste}{i}", 100 + step) for i in rng.choice(9, 2, replace=False)]
            if taste == "s":
                rows.append((f"u{u}", "n0", 100 + step))
        periods.append(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    return frame, text, periods


def test_exploration_finds_a_good_new_item_that_the_ranking_alone_never_shows() -> None:
    frame, text, periods = planted_replay()
    # two_tastes' timestamps are positions, not times: fitted without them, the rehearsal is random
    # and the gate's new-item bias is not what this test of the slots turns on.
    rec = HybridRecommender({"neighbours": 5}, device="cpu").fit(frame.drop(columns="timestamp"), text)
    without = replay(rec, periods, k=3)
    with_slots = replay(rec, periods, k=3, explore=ExploreConfig(slots=1, policy="thompson"))
    assert without.new_items == with_slots.new_items == 8  # s9, c9 and the six catalogue entries
    assert without.warmed == 0
    assert with_slots.warmed >= 1 and with_slots.explore_clicks >= 5
    # After the replay the graph half ranks n0 as a space film, above every cooking show and decoy,
    # for space fans who never clicked it.
    model = with_slots.model
    n0 = model.item_ids_.get_loc("n0")
    fans = [u for u in range(0, 40, 2) if model.history_[model.user_ids_.get_loc(f"u{u}"), n0] == 0]
    assert fans, "every fan clicked n0: nobody left to test the graph half on"
    rows = model.user_ids_.get_indexer([f"u{u}" for u in fans])
    graph = model.model_.graph_scores(rows, model.history_[rows])
    others = model.item_ids_.get_indexer([f"c{i}" for i in range(10)] + [f"n{i}" for i in range(1, 6)])
    assert (graph[:, n0] > graph[:, others].max(1).values).all()
    assert model.model_.counts_[n0] >= 5 and without.model.model_.counts_[n0] == 0


def test_periods_of_cuts_by_calendar_step() -> None:
    day = 86_400
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 3, 4], "timestamp": [0, day + 5, day + 9, 9 * day]})
    steps = periods_of(frame, 0, 9 * day, "D")
    assert [len(s) for s in steps] == [1, 2]
