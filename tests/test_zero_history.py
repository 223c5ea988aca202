"""One zero-history path (issue 34): a user described by text gets the same list from
``recommend_for_text(t)`` as from ``recommend_for_user(profile=t)``: the new-user path with its
zero-history floor, the one rehearsed for users with no items."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file
from test_new_users import ASTRONOMER, CHEF, planted

from hybrid import HybridRecommender
from hybrid.data.text_features import EncoderConfig
from hybrid.fusion import persist
from hybrid.fusion.floor import ZeroHistoryPrior
from hybrid.fusion.user_text import UserTextState

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
    """Both calls give one list, and it is the zero-history path's: the new-user gate "0" (or the
    floor's prior; the item gate in a hybrid without new-user gates), as the explanation of its
    items says, with the scores that path gives."""
    path = rec.model_.new_users_
    expected = (f"zero-history prior {path.prior.kind}" if path.prior.scores is not None
                else "new-user gate 0" if path.gates else "item gate")  # no gates: the item gate
    for text in TEXTS:
        ids, scores = rec.recommend_for_text(text, k=k)
        user_ids, user_scores = rec.recommend_for_user(profile=text, k=k)
        assert list(ids) == list(user_ids), text
        assert np.array_equal(scores, user_scores), text
        explained = rec.explain_for_user(list(ids), profile=text)
        assert {e["path"] for e in explained} == {expected}, text
        assert np.allclose([e["score"] for e in explained], scores, atol=1e-5), text


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


def test_a_saved_hybrid_gives_the_same_text_lists(with_gates, tmp_path) -> None:
    """The same lists; the scores to float rounding (a loaded array's memory layout can take
    another BLAS path: the item vectors' products already differ in the 7th digit, as for
    every list of a loaded model, see test_persistence)."""
    with_gates.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m", device="cpu")
    for text in TEXTS:
        ids, scores = with_gates.recommend_for_text(text, k=8)
        loaded_ids, loaded_scores = loaded.recommend_for_text(text, k=8)
        assert list(ids) == list(loaded_ids), text
        assert np.allclose(scores, loaded_scores, rtol=1e-5, atol=1e-6), text
    same_lists(loaded)


def test_the_user_text_state_is_read_from_the_folder_alone_in_the_format_it_had(with_gates, tmp_path) -> None:
    """The state is built from the saved files, not from the model's other attributes (so the
    order persist reads them in cannot matter); the folder holds the same entries as before the
    state was a part of its own: the profiles are the new-user path's side vectors, one array."""
    with_gates.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / persist.CONFIG_FILE).read_text())
    tensors = load_file(str(tmp_path / "m" / persist.WEIGHTS_FILE))
    assert meta["profiles"] == "new_users.vectors" and "user_profiles" not in tensors
    state = UserTextState.from_saved(meta, tensors, tmp_path / "m", EncoderConfig(), "cpu")
    model = with_gates.model_
    assert state.active and state.texts is None
    assert torch.equal(state.vectors, model.new_users_.user_vectors)
    users, empty = np.arange(6), sp.csr_matrix((6, 20), dtype=np.float32)
    assert torch.equal(state.text_profiles(users, empty, model.builder_), model.text_profiles(users, empty))
    loaded = HybridRecommender.load(tmp_path / "m", device="cpu").model_
    assert loaded.user_text_.vectors is loaded.new_users_.user_vectors  # read once, saved once again
    older = UserTextState.from_saved({"user_text": ["", CHEF]}, {}, tmp_path / "m", EncoderConfig(), "cpu")
    assert older.active and torch.equal(older.profiles()[1], model.text_vectors([CHEF])[0])
    assert not older.profiles()[0].any()
    with pytest.raises(ValueError, match="lacks the array 'user_profiles'"):
        UserTextState.from_saved({"profiles": "user_profiles"}, tensors, tmp_path / "m", EncoderConfig(), "cpu")


def test_column_scoring_of_a_zero_history_row_reads_the_prior_of_those_columns(with_gates) -> None:
    """``score_candidates`` (the two-stage ranker's column scores [rows, len(cols)]) of a row the
    floor's prior ranks: the prior of the scored items, as ``score_users`` gives them."""
    model = with_gates.model_
    path, reference = model.new_users_, model.reference_
    original = path.prior
    n_items = len(with_gates.item_ids_)
    path.prior = ZeroHistoryPrior("popularity", None, torch.arange(n_items, dtype=torch.float32) * 0.5, {})
    model.reference_ = np.arange(0, n_items, 3)  # a sample: the scored columns are not the catalogue
    try:
        empty = sp.csr_matrix((1, n_items), dtype=np.float32)
        candidates = np.array([[7, 2, 11, 4]])
        scores = model.score_candidates(np.array([-1]), empty, candidates)
        exact = model.score_users(np.array([-1]), empty)
        assert torch.equal(scores[0], exact[0, torch.as_tensor(candidates[0])])
        assert torch.equal(scores[0], torch.as_tensor(candidates[0], dtype=torch.float32) * 0.5)
    finally:
        path.prior, model.reference_ = original, reference
