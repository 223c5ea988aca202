"""Why this item (issue 36): explanations that add up to the score the ranking used, for warm
users, new items and new or zero-history users, and that survive save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import two_tastes
from test_graph_half_contract import QUICK, SMALL, tastes
from test_new_users import ASTRONOMER, planted

from hybrid import HybridRecommender
from hybrid.data.interactions import BadInputError, UnknownIdError
from hybrid.fusion.floor import ZeroHistoryPrior
from hybrid.fusion.halves import GRAPH_HALVES

JAZZ = [
    "Kind of Blue: modal jazz trumpet record with Miles Davis",
    "A Love Supreme: spiritual jazz saxophone by John Coltrane",
    "Time Out: cool jazz piano quartet with Dave Brubeck",
    "Mingus Ah Um: jazz bass and big band swing",
    "Blue Train: hard bop jazz saxophone record",
    "Moanin': hard bop jazz drums by Art Blakey",
    "Waltz for Debby: live jazz piano trio by Bill Evans",
    "Head Hunters: jazz funk keyboards by Herbie Hancock",
    "Saxophone Colossus: jazz tenor saxophone by Sonny Rollins",
]
METAL = [
    "Master of Puppets: thrash metal guitar riffs",
    "Paranoid: heavy metal album with distorted guitars",
    "Reign in Blood: fast thrash metal drums and screams",
    "The Number of the Beast: British heavy metal anthems",
    "Rust in Peace: technical thrash metal guitar solos",
    "Painkiller: heavy metal screaming vocals and double bass drums",
    "Ace of Spades: loud rock and metal with bass distortion",
    "Vulgar Display of Power: groove metal guitar",
    "Holy Diver: heavy metal fantasy vocals",
]
NEW_JAZZ = "Somethin' Else: jazz trumpet and alto saxophone record with Cannonball Adderley"
TOL = 1e-5


def summed(explanation: dict) -> float:
    return explanation["bias"] + sum(explanation["contributions"].values())


@pytest.fixture(scope="module")
def records() -> HybridRecommender:
    frame, text = two_tastes(60, tastes=(("j", JAZZ), ("m", METAL)))
    rec = HybridRecommender({"neighbours": 5}, device="cpu", seed=0).fit(frame, text)
    return rec.add_items({"j_new": NEW_JAZZ})


def test_a_new_jazz_record_is_explained_by_the_users_jazz_items_and_text(records) -> None:
    out = records.explain("u0", "j_new")
    liked = set(records.history_[0].indices)
    assert out["bucket"] == "0" and out["path"] == "item gate" and out["graph_support"] == []
    assert out["text_support"] and all(s["item"].startswith("j") for s in out["text_support"])
    assert {records.item_ids_.get_loc(s["item"]) for s in out["text_support"]} <= liked
    assert 0 < sum(s["share"] for s in out["text_support"]) <= 1 + 1e-9
    text = {f: out["contributions"][f] for f in ("profile", "text_knn", "text_graph")}
    assert max(text.values()) > 0  # the graph knows nothing of it: its z is the same for every new item
    assert "because" in out and json.loads(json.dumps(out)) == out
    print(json.dumps(out, indent=1))


def test_contributions_add_up_to_the_ranked_scores_of_warm_users(records) -> None:
    for user in ("u0", "u1", "u7"):
        ids, scores, explanations = records.recommend(user, k=8, explain=True)
        assert [e["item"] for e in explanations] == list(ids)
        for e, score in zip(explanations, scores, strict=True):
            assert abs(summed(e) - score) < TOL and abs(e["score"] - score) < TOL
    ids, scores, explanations = records.recommend(["u0", "u1"], k=5, explain=True)
    assert len(explanations) == 2 and [e["item"] for e in explanations[1]] == list(ids[1])
    assert records.explain_top("u2", k=5) == records.recommend("u2", k=5, explain=True)[2]
    warm = records.explain("u0", items=list(ids[0][:3]))
    assert all(e["graph_support"] for e in warm if e["bucket"] != "0")


def test_a_new_items_score_matches_the_models(records) -> None:
    index = records.user_ids_.get_indexer(["u0", "u1"])
    scores = records.model_.score(index, records.history_[index]).numpy()
    new = records.item_ids_.get_loc("j_new")
    for row, user in enumerate(("u0", "u1")):
        assert abs(records.explain(user, "j_new")["score"] - scores[row, new]) < TOL


def test_new_and_zero_history_users_follow_their_path(records) -> None:
    ids, scores = records.recommend_for_user(items=["j1", "j2"], k=6)
    out = records.explain_for_user(list(ids), known=["j1", "j2"])
    assert [abs(summed(e) - s) < TOL for e, s in zip(out, scores, strict=True)] == [True] * len(ids)
    ids, scores = records.recommend_for_text("saxophone jazz records", k=6)
    out = records.explain_for_user(list(ids), profile="saxophone jazz records")
    assert all(abs(summed(e) - s) < TOL for e, s in zip(out, scores, strict=True))
    assert all(e["user"] is None and e["graph_support"] == [] for e in out)


def test_zero_history_users_with_gates_or_the_prior() -> None:
    data, text, profiles = planted()
    rec = HybridRecommender({"neighbours": 5, "candidates": 20, "random_negatives": 20}, device="cpu").fit(
        data.to_frame(), dict(enumerate(text)), user_text=dict(enumerate(profiles)))
    ids, scores = rec.recommend_for_text(ASTRONOMER, k=6)
    out = rec.explain_for_user(list(ids), profile=ASTRONOMER)
    assert all(abs(summed(e) - s) < TOL for e, s in zip(out, scores, strict=True))
    prior = rec.model_.new_users_.prior
    assert out[0]["path"] == ("new-user gate 0" if prior.scores is None else f"zero-history prior {prior.kind}")
    if prior.scores is None:
        assert "side" in out[0]["contributions"] and "from your profile" in out[0]["because"]
    path = rec.model_.new_users_  # the floor's prior in place of the gate: the list rests on it alone
    path.prior = ZeroHistoryPrior("popularity", None, torch.arange(20, dtype=torch.float32), {})
    ids, scores = rec.recommend_for_text(ASTRONOMER, k=4)
    out = rec.explain_for_user(list(ids), profile=ASTRONOMER)
    assert [e["path"] for e in out] == ["zero-history prior popularity"] * 4
    assert [e["contributions"] for e in out] == [{"popularity": float(s)} for s in scores] and out[0]["bias"] == 0
    assert "no history yet" in out[0]["because"]
    path.prior = prior
    ids, scores = rec.recommend_for_user(profile=ASTRONOMER, items=[1], k=6)
    out = rec.explain_for_user(list(ids), profile=ASTRONOMER, known=[1])
    assert out[0]["path"].startswith("new-user gate 1-4")
    assert all(abs(summed(e) - s) < TOL for e, s in zip(out, scores, strict=True))


def rounded(value, digits: int = 4):
    """``value`` with every float rounded: a loaded model's scores equal the saved one's to float
    rounding only (MKL's sparse kernels, see test_recommender's save/load test)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def test_an_explanation_round_trips_through_save_and_load(records, tmp_path) -> None:
    records.save(tmp_path / "model")
    loaded = HybridRecommender.load(tmp_path / "model", device="cpu")
    for user, item in (("u0", "j_new"), ("u1", "m3"), ("u3", "j2")):
        before, after = records.explain(user, item), loaded.explain(user, item)
        assert rounded(after) == rounded(before) and abs(after["score"] - before["score"]) < TOL
        assert json.loads(json.dumps(after)) == after


def test_unknown_ids_and_bad_calls_raise(records) -> None:
    with pytest.raises(UnknownIdError, match="nobody"):
        records.explain("nobody", "j1")
    with pytest.raises(UnknownIdError, match="nothing"):
        records.explain("u0", "nothing")
    with pytest.raises(BadInputError, match="not both"):
        records.explain("u0")
    with pytest.raises(BadInputError, match="nothing to explain"):
        records.explain_for_user(["j1"])


@pytest.mark.parametrize("half", sorted(GRAPH_HALVES))
def test_every_graph_half_explains_what_it_ranked(half: str) -> None:
    frame, text = tastes()
    config = {**SMALL, "warm_model": half, "warm_params": QUICK.get(half, {})}
    rec = HybridRecommender(config, device="cpu", seed=3).fit(frame, text)
    rec.add_items({"s_new": "A crewed rocket launch to the moon"})
    for user in ("u0", "u1"):
        _ids, scores, explanations = rec.recommend(user, k=6, explain=True)
        assert all(abs(summed(e) - s) < TOL for e, s in zip(explanations, scores, strict=True))
        warm = [e for e in explanations if e["bucket"] != "0"]
        assert warm and any(e["graph_support"] for e in warm)  # a warm item the graph scores below 0 has none
    new = rec.explain("u0", "s_new")
    assert new["graph_support"] == [] and all(s["item"].startswith("s") for s in new["text_support"])


def test_a_two_stage_list_is_explained_by_the_scores_it_was_ranked_by() -> None:
    from conftest import two_tastes

    frame, text = two_tastes()
    staged = HybridRecommender({"neighbours": 5}, device="cpu",
                               retrieval={"kind": "ann", "index": {"kind": "flat"}, "candidates": 30}).fit(frame, text)
    staged.model_.reference_ = np.arange(0, len(staged.item_ids_), 2)  # a sample, as on a large catalogue
    ids, scores, explanations = staged.recommend("u0", k=6, explain=True)
    exact = staged.recommend("u0", k=6, items=list(staged.item_ids_))[1]
    assert not np.allclose(scores, exact, atol=1e-3)  # the sample's standardisation moves the scores
    assert [e["item"] for e in explanations] == list(ids)
    assert all(abs(summed(e) - s) < TOL and e["path"].endswith("(two-stage)")
               for e, s in zip(explanations, scores, strict=True))
    one = staged.explain("u0", ids[0])  # a named item: scored exactly, as recommend(items=...) does
    alone = staged.recommend("u0", k=1, items=[ids[0]])[1][0]
    assert abs(one["score"] - alone) < TOL and not one["path"].endswith("(two-stage)")


def test_ease_item_relation_is_the_score_of_a_one_item_history() -> None:
    """EASE's graph support is read off its weights: the same numbers its score gives a user whose
    only item is the supporting one (the explanation of a top-20 list needs no catalogue-wide product)."""
    frame, text = tastes()
    rec = HybridRecommender({**SMALL, "warm_model": "ease"}, device="cpu", seed=3).fit(frame, text)
    warm = rec.model_.warm_
    n_items = warm.weights_.shape[0]
    known, wanted = np.array([0, 2, 5]), np.array([1, 2, 4])
    alone = sp.csr_matrix((np.ones(3, np.float32), (np.arange(3), known)), shape=(3, n_items))
    expected = warm.score(np.zeros(3, np.int64), alone)[:, torch.as_tensor(wanted)]
    assert torch.equal(warm.item_relation(known, wanted), expected)
