"""Review fixes of the explanation feature: each explanation is of the score its item was listed
or asked with (exploration slots, named items under ``retrieval: ann``), batched explanation
passes, the ``because`` line's profile wording, and the floor's prior under column scoring."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid import HybridRecommender

TOL = 1e-5


def summed(explanation: dict) -> float:
    return explanation["bias"] + sum(explanation["contributions"].values())


def close(a, b, tol: float = 1e-5) -> bool:
    """``a`` and ``b`` alike, floats to ``tol`` (a batch's matrix products round differently)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol * max(1.0, abs(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def staged() -> HybridRecommender:
    from conftest import two_tastes

    frame, text = two_tastes()
    rec = HybridRecommender({"neighbours": 5}, device="cpu",
                            retrieval={"kind": "ann", "index": {"kind": "flat"}, "candidates": 30}).fit(frame, text)
    rec.model_.reference_ = np.arange(0, len(rec.item_ids_), 2)  # a sample: two-stage scores move
    return rec


def test_exploration_slots_of_a_two_stage_list_are_explained_by_their_exact_scores(staged) -> None:
    users = ["u0", "u1", "u2"]
    # a wide bonus: the unsold items (s9, c9) take the slots, so a space fan's list holds c9, which
    # the two-stage ranking does not reach, whatever the gate's weights
    explore = {"slots": 2, "policy": "ucb", "max_count": 10**6, "width": 10.0}
    ids, scores, flags, explanations = staged.recommend(users, k=6, explore=explore, explain=True)
    assert flags.any()
    for row_ids, row_scores, row_flags, row in zip(ids, scores, flags, explanations, strict=True):
        assert [e["item"] for e in row] == list(row_ids)
        for e, s, f in zip(row, row_scores, row_flags, strict=True):
            assert abs(summed(e) - s) < TOL and abs(e["score"] - s) < TOL, (e, s, f)
    exploratory = [e for row, f in zip(explanations, flags, strict=True) for e, x in zip(row, f, strict=True) if x]
    assert any(not e["path"].endswith("(two-stage)") for e in exploratory)


def test_named_items_are_explained_as_recommend_scores_them(staged) -> None:
    """``recommend(user, items=[...])`` scores a short list exactly; ``explain(user, items=[...])``
    explains those exact scores, while ``explain_top`` follows the two-stage ranker."""
    named = list(staged.item_ids_[:7])
    ids, scores = staged.recommend("u0", k=5, items=named)
    explained = staged.explain("u0", items=list(ids))
    assert all(abs(summed(e) - s) < TOL and not e["path"].endswith("(two-stage)")
               for e, s in zip(explained, scores, strict=True))
    one = staged.explain("u0", ids[0])
    assert abs(one["score"] - scores[0]) < TOL
    top_ids, top_scores = staged.recommend("u0", k=4)
    top = staged.explain_top("u0", k=4)
    assert [e["item"] for e in top] == list(top_ids)
    assert all(abs(e["score"] - s) < TOL and e["path"].endswith("(two-stage)") for e, s in zip(top, top_scores, strict=True))


def test_explaining_in_user_batches_changes_nothing(tiny_model, monkeypatch) -> None:
    """``explained`` (what ``hybrid-recommend --explain`` writes) passes users in batches sized as
    ``top_k_masked`` sizes them; a batch of one user gives the same explanations."""
    import hybrid.retrieval.ranking as ranking

    rec = tiny_model[0]
    users = np.arange(7)
    items = [np.array([0, 3, 5]) + u % 3 for u in users]
    whole, listed = rec.explained(users, items), rec.recommend(list(rec.user_ids_[:5]), k=3, explain=True)
    monkeypatch.setattr(ranking, "MAX_SCORE_ENTRIES", 1)
    assert ranking.user_batch_size(len(rec.item_ids_)) == 1
    assert close(rec.explained(users, items), whole)  # to float rounding: other rows beside them
    again = rec.recommend(list(rec.user_ids_[:5]), k=3, explain=True)
    assert (again[0] == listed[0]).all() and np.allclose(again[1], listed[1], atol=1e-5) and close(again[2], listed[2])


def because(contributions: dict, known_items: int, text_support=(), path: str = "item gate") -> str:
    from hybrid.fusion.explain import because as line

    text = [{"item": item, "value": value, "share": share} for item, value, share in text_support]
    ranked = sorted(contributions.items(), key=lambda kv: -kv[1])[:3]
    return line(ranked, [], text, known_items, path, 0.0)


def test_from_your_profile_follows_the_signal_not_the_text_support() -> None:
    """``side`` is always the user's profile; ``profile`` is their profile text only with no items."""
    new_with_items = because({"side": 0.5, "profile": 0.3, "graph": 0.1}, 2, [(3, 0.4, 1.0)], "new-user gate 1-4")
    assert new_with_items == "side 0.50 (from your profile); profile 0.30 (like 3); graph 0.10"
    assert because({"profile": 0.4, "graph": 0.2}, 5) == "profile 0.40; graph 0.20"  # a warm user: their items
    assert because({"side": 0.3, "profile": 0.2}, 0, path="new-user gate 0") == \
        "side 0.30 (from your profile); profile 0.20 (from your profile)"


def test_a_warm_users_list_is_never_from_their_profile(tiny_model) -> None:
    rec = tiny_model[0]
    rows = rec.recommend(list(rec.user_ids_[:6]), k=5, explain=True)[-1]
    assert all(e["known_items"] > 0 and "from your profile" not in e["because"] for row in rows for e in row)


def test_graph_support_caps_known_items_only_where_each_is_scored_alone(tiny_model, monkeypatch) -> None:
    """EASE's item-item weights (and an embedding half's dot products) give every known item's
    support; only a half scored one one-item history at a time (a graph filter) stops at MAX_HISTORY."""
    from test_graph_half_contract import SMALL, tastes

    import hybrid.fusion.explain as explain

    frame, text = tastes()
    ease = HybridRecommender({**SMALL, "warm_model": "ease"}, device="cpu", seed=3).fit(frame, text)
    user = ease.user_ids_[0]
    whole = ease.explain_top(user, k=4)
    filtered = tiny_model[0].explain_top("u0", k=4)
    monkeypatch.setattr(explain, "MAX_HISTORY", 1)
    assert [e["graph_support"] for e in ease.explain_top(user, k=4)] == [e["graph_support"] for e in whole]
    capped = tiny_model[0].explain_top("u0", k=4)
    assert all(len(e["graph_support"]) <= 1 for e in capped)
    assert any(len(e["graph_support"]) > 1 for e in whole + filtered)  # the cap was binding


def test_a_list_and_its_reasons_come_from_one_signal_pass(tiny_model, monkeypatch) -> None:
    """``recommend(..., explain=True)`` explains each list from the signal rows it was ranked by,
    not from a second pass: one ``signal_rows`` call per batch, and the same reasons as asking after."""
    rec = tiny_model[0]
    users = list(rec.user_ids_[:6])
    calls = []
    original = rec.model_.signal_rows
    monkeypatch.setattr(rec.model_, "signal_rows", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    ids, scores, reasons = rec.recommend(users, k=4, explain=True)
    assert len(calls) == 1
    asked = rec.explained(np.arange(6), [rec.item_ids_.get_indexer(row) for row in ids])
    assert close(reasons, asked)
    assert all(abs(e["score"] - s) < TOL for row, srow in zip(reasons, scores, strict=True)
               for e, s in zip(row, srow, strict=True))
