"""New users: the user-side content path, the new-user gates, onboarding through the facade, and
bootstrap intervals on the cold-user tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from test_recommender import COOKING, SPACE

from hybrid import HybridRecommender
from hybrid.data.interactions import Interactions
from hybrid.fusion.user_side import SideRegression
from hybrid.metrics import ranking_metrics
from hybrid.models import make_model
from hybrid.models.base import FitData

ASTRONOMER = "A young astronomer who watches the night sky."
CHEF = "A restaurant chef who loves markets and kitchens."


def planted(n_users: int = 60, seed: int = 0) -> tuple[Interactions, list[str], list[str]]:
    """Astronomers (even users) use space items 0-9, chefs (odd) cooking items 10-19; 8 each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        offset = 0 if u % 2 == 0 else 10
        for t, i in enumerate(rng.choice(9, 8, replace=False)):
            rows.append((u, offset + i, t + 10 * u))
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    data = Interactions.from_frame(frame, item_ids=pd.Index(range(20)))
    profiles = [ASTRONOMER if u % 2 == 0 else CHEF for u in range(n_users)]
    return data, SPACE + COOKING, profiles


def test_side_regression_maps_planted_side_information_to_the_right_taste() -> None:
    data, _, profiles = planted()
    from hybrid.data.text_features import EncoderConfig, encode_texts

    vectors = torch.nn.functional.normalize(torch.as_tensor(encode_texts(profiles, EncoderConfig())), dim=1)
    side = SideRegression().fit(vectors, data.matrix())
    new = torch.nn.functional.normalize(torch.as_tensor(encode_texts([ASTRONOMER, CHEF], EncoderConfig())), dim=1)
    top = torch.topk(side.score(new), 5, dim=1).indices
    assert (top[0] < 10).all() and (top[1] >= 10).all()
    assert side.ridge_ is not None and side.valid_


@pytest.fixture(scope="module")
def fitted() -> tuple[FitData, object]:
    data, text, profiles = planted()
    fit = FitData(train=data, item_text=text, user_text=profiles)
    return fit, make_model("hybrid", {"neighbours": 5}).fit(fit)


def test_the_hybrid_fits_new_user_gates_on_a_rehearsal_and_records_it(fitted) -> None:
    _, model = fitted
    record = model.chosen()["new users"]
    assert set(model.new_users_.gates) == {"0", "1-4", "1-4 no side"} and record["users"] >= 20
    for bucket in ("0", "1-4", "1-4 no side"):
        assert {"valid_recall@20 new-user gate", "valid_recall@20 side", "weights"} <= set(record[bucket])
        assert "side" in record[bucket]["weights"]


def test_a_new_user_is_ranked_by_side_information_alone(fitted) -> None:
    _, model = fitted
    empty = sp.csr_matrix((2, 20), dtype=np.float32)
    side = model.text_vectors([ASTRONOMER, CHEF])
    scores = model.score_users(np.array([-1, -1]), empty, side=side)
    top = torch.topk(scores, 5, dim=1).indices
    assert (top[0] < 10).float().mean() >= 0.8 and (top[1] >= 10).float().mean() >= 0.8


def test_the_new_user_gate_serves_only_untrained_users_with_few_items(fitted) -> None:
    fit, model = fitted
    history = fit.train.matrix()
    warm_rows = model.new_users_.rows(np.arange(4), history[:4])
    assert len(warm_rows) == 0  # trained users keep the item gate, whatever their history
    few = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 1], [1, 2, 3])), shape=(3, 20))
    assert model.new_users_.rows(np.array([-1, -1, -1]), few).tolist() == [0, 1, 2]
    many = sp.csr_matrix((np.ones(5, np.float32), ([0] * 5, range(5))), shape=(1, 20))
    assert len(model.new_users_.rows(np.array([-1]), many)) == 0


def test_a_user_with_side_information_and_items_gets_both_signals(tmp_path) -> None:
    data, text, profiles = planted()
    rec = HybridRecommender({"neighbours": 5}, device="cpu")
    rec.fit(data.to_frame(), dict(enumerate(text)), user_text=dict(enumerate(profiles)))
    space_item = [0]
    profile_only = rec.recommend_for_user(profile=CHEF, k=10)[0]
    items_only = rec.recommend_for_user(items=space_item, k=10)[0]
    both = rec.recommend_for_user(profile=CHEF, items=space_item, k=10)[0]
    share = lambda ids: float(np.mean([i < 10 for i in ids]))  # noqa: E731  (space share of a list)
    assert share(profile_only) < 0.5 < share(items_only)
    assert share(profile_only) < share(both) < share(items_only)
    rec.save(tmp_path / "model")
    loaded = HybridRecommender.load(tmp_path / "model", device="cpu")
    assert list(loaded.recommend_for_user(profile=CHEF, items=space_item, k=10)[0]) == list(both)
    with pytest.raises(ValueError, match="profile, items, or both"):
        rec.recommend_for_user(k=3)


def test_bootstrap_intervals_bracket_the_mean_and_repeat_with_the_seed() -> None:
    rng = np.random.default_rng(0)
    relevant = sp.csr_matrix((rng.random((400, 30)) < 0.2).astype(np.float32))
    top = np.argsort(rng.random((400, 30)), axis=1)[:, :10]
    metrics = ranking_metrics(top, relevant, [10], bootstrap=500, seed=3)
    assert metrics["recall@10_lo"] < metrics["recall@10"] < metrics["recall@10_hi"]
    assert metrics == ranking_metrics(top, relevant, [10], bootstrap=500, seed=3)
    narrow = ranking_metrics(np.tile(top, (4, 1)), sp.vstack([relevant] * 4).tocsr(), [10], bootstrap=500, seed=3)
    assert narrow["ndcg@10_hi"] - narrow["ndcg@10_lo"] < metrics["ndcg@10_hi"] - metrics["ndcg@10_lo"]
    assert "recall@10_lo" not in ranking_metrics(top, relevant, [10])


def test_rehearsal_batches_too_large_to_keep_are_recomputed_to_the_same_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond SIGNAL_CACHE_FLOATS the rehearsals (the item gate's selection users, the new-user
    gates' users) recompute their batches per pass instead of holding users × items signals: the
    gates come out the same."""
    from hybrid.fusion import signals

    train, texts, profiles = planted(80)
    data = FitData(train=train, item_text=texts, user_text=profiles, seed=0)
    kept = make_model("hybrid", {"neighbours": 5}).fit(data)
    monkeypatch.setattr(signals, "SIGNAL_CACHE_FLOATS", 0)
    recomputed = make_model("hybrid", {"neighbours": 5}).fit(data)
    assert torch.equal(kept.gate_weight_, recomputed.gate_weight_) and torch.equal(kept.gate_bias_, recomputed.gate_bias_)
    kept, recomputed = kept.new_users_.gates, recomputed.new_users_.gates
    assert set(kept) == {"0", "1-4", "1-4 no side"} and kept.keys() == recomputed.keys()
    for name, (weight, bias) in kept.items():
        assert torch.equal(weight, recomputed[name][0]) and torch.equal(bias, recomputed[name][1])


def test_signal_batches_keep_what_fits_and_remake_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A :class:`SignalBatches` within the budget makes its batches once; beyond it, once per pass;
    a pass left early is not kept."""
    from hybrid.fusion import signals

    monkeypatch.setattr(signals, "SIGNAL_CACHE_FLOATS", 10)
    made = []

    def make():
        made.append(1)
        yield from range(3)

    kept = signals.SignalBatches(make, 10)
    assert next(iter(kept)) == 0 and list(kept) == list(kept) == [0, 1, 2] and len(made) == 2
    made.clear()
    remade = signals.SignalBatches(make, 11)
    assert list(remade) == list(remade) == [0, 1, 2] and len(made) == 2
