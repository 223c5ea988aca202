"""Every registered graph half takes the hybrid's whole life cycle (issue 34, item 1).

On a tiny catalogue built here (space fans and cooking fans), each half of
:data:`hybrid.fusion.halves.GRAPH_HALVES` is fitted as the hybrid's ``warm_model``, saved, loaded,
given new items and new interactions (``add_items`` then ``partial_fit``), saved and loaded again:
the loaded model must recommend exactly as the one it was saved from at every step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid import HybridRecommender
from hybrid.fusion.halves import GRAPH_HALVES

SPACE = ["A rebel pilot fights a galactic empire", "Starship crew explores alien worlds",
         "Astronauts stranded on Mars", "Interstellar war between colonies and robots",
         "A heist aboard an orbiting space station", "Spaceships invade the cities",
         "A robot drifts through a derelict spacecraft", "First contact with an alien signal"]
COOKING = ["A baking show with cakes and bread", "Chefs cook Italian pasta and sauces",
           "Sushi masters in Tokyo", "A street food tour of tacos and salsa",
           "Vegetarian recipes for weeknight dinners", "A pastry chef teaches French desserts",
           "Grilling and barbecue for summer", "A chef tastes curries across India"]
# Few negatives for a 16-item catalogue; the trained halves need only a few small epochs here.
SMALL = {"neighbours": 5, "candidates": 10, "random_negatives": 10}
QUICK = {"lightgcn": {"epochs": 4, "dim": 8}, "mf": {"epochs": 4, "dim": 8}}
USERS = ["u0", "u1", "u2", "u3"]


def tastes(n_users: int = 24) -> tuple[pd.DataFrame, dict[str, str]]:
    """Even users watch space films, odd ones cooking shows; s7 and c7 have text only (cold)."""
    rng = np.random.default_rng(0)
    text = {f"s{i}": t for i, t in enumerate(SPACE)} | {f"c{i}": t for i, t in enumerate(COOKING)}
    rows = [(f"u{u}", f"{'s' if u % 2 == 0 else 'c'}{i}", t)
            for u in range(n_users) for t, i in enumerate(rng.choice(7, 3, replace=False))]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"]), text


def same_lists(a: HybridRecommender, b: HybridRecommender, users: list[str]) -> None:
    ids, scores = a.recommend(users, k=5)
    other_ids, other_scores = b.recommend(users, k=5)
    assert (ids == other_ids).all()
    assert np.allclose(scores, other_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("half", sorted(GRAPH_HALVES))
def test_every_graph_half_saves_loads_adds_items_and_takes_partial_fit(half: str, tmp_path: Path) -> None:
    frame, text = tastes()
    config = {**SMALL, "warm_model": half, "warm_params": QUICK.get(half, {})}
    rec = HybridRecommender(config, device="cpu", seed=3).fit(frame, text)
    assert rec.model_.warm_name_ == half
    rec.save(tmp_path / "fitted")
    loaded = HybridRecommender.load(tmp_path / "fitted", device="cpu")
    same_lists(rec, loaded, USERS)

    new_items = {"s_new": "A crewed rocket launch to the moon", "c_new": "Slow-cooked stews and soups"}
    for model in (rec, loaded):
        model.add_items(new_items)
    same_lists(rec, loaded, USERS)
    rec.save(tmp_path / "added")
    same_lists(rec, HybridRecommender.load(tmp_path / "added", device="cpu"), USERS)

    more = pd.DataFrame({"user": ["n1", "n1", "u1"], "item": ["s_new", "s0", "c_new"], "timestamp": [100, 101, 102]})
    for model in (rec, loaded):
        model.partial_fit(more)
    assert "n1" in rec.user_ids_ and rec.history_.shape == loaded.history_.shape
    same_lists(rec, loaded, [*USERS, "n1"])
    rec.save(tmp_path / "updated")
    again = HybridRecommender.load(tmp_path / "updated", device="cpu")
    same_lists(rec, again, [*USERS, "n1"])
    again.partial_fit(pd.DataFrame({"user": ["n2"], "item": ["c_new"], "timestamp": [200]}))  # and once more
    assert "n2" in again.user_ids_
