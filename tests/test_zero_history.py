"""One zero-history path (issue 34): a user described by text gets the same list from
``recommend_for_text(t)`` as from ``recommend_for_user(profile=t)``: the new-user path with its
zero-history floor, the one rehearsed for users with no items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_new_users import ASTRONOMER, CHEF, planted

from hybrid import HybridRecommender
from hybrid.fusion.floor import ZeroHistoryPrior

SMALL = {"neighbours": 5, "candidates": 20, "random_negatives": 20}
TEXTS = (ASTRONOMER, CHEF, "space battles with starships and aliens", "pasta")


def fit(config: dict) -> HybridRecommender:
    data, text, profiles = planted()
    return HybridRecommender(config, device="cpu").fit(data.to_frame(), dict(enumerate(text)),
                                                       user_text=dict(enumerate(profiles)))


@pytest.fixture(scope="module")
def with_gates() -> HybridRecommender:
    return fit(SMALL)


def same_lists(rec: HybridRecommender, k: int = 8) -> None:
    for text in TEXTS:
        ids, scores = rec.recommend_for_text(text, k=k)
        user_ids, user_scores = rec.recommend_for_user(profile=text, k=k)
        assert list(ids) == list(user_ids), text
        assert np.array_equal(scores, user_scores), text


def test_text_and_profile_of_a_zero_history_user_are_one_list(with_gates) -> None:
    assert set(with_gates.model_.new_users_.gates) >= {"0"}  # the new-user path is fitted
    same_lists(with_gates)


def test_a_prior_that_ranks_zero_history_users_ranks_users_described_by_text(with_gates) -> None:
    path = with_gates.model_.new_users_
    original = path.prior
    path.prior = ZeroHistoryPrior("popularity", None, torch.arange(20, dtype=torch.float32), {})
    try:
        ids, _ = with_gates.recommend_for_text("space battles with starships and aliens", k=5)
        assert list(ids) == list(with_gates.item_ids_[[19, 18, 17, 16, 15]])  # the floor's list
        same_lists(with_gates)
    finally:
        path.prior = original


def test_a_hybrid_without_new_user_gates_gives_one_list_too() -> None:
    rec = fit({**SMALL, "new_users": False})
    assert not rec.model_.new_users_.gates  # the fallback: the item gate, the text as the profile
    same_lists(rec)
