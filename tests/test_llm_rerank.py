"""The ``llm`` / ``hybrid+llm`` models: who gets reranked, and what may move."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from test_reranker import one_torch_thread, tiny_model_dir  # noqa: F401  (fixtures)

from hybrid.config import ExperimentConfig
from hybrid.data.interactions import Interactions
from hybrid.evaluation.evaluate import fingerprint, fitted_model
from hybrid.metrics import mask_history
from hybrid.models import FitData, make_model


def tiny_data() -> FitData:
    rows = [(u, i) for u in range(6) for i in range(u, u + 4)]
    train = Interactions.from_frame(
        pd.DataFrame(rows, columns=["user", "item"]), user_ids=range(8), item_ids=range(12)
    )
    titles = [f"Film number {i}" for i in range(12)]
    return FitData(train=train, item_text=titles, item_titles=titles,
                   user_text=[f"A viewer aged {20 + u}." for u in range(8)])


def test_only_users_without_history_are_reranked_within_the_top_n(tiny_model_dir) -> None:  # noqa: F811
    data = tiny_data()
    model = make_model("llm", {"model": tiny_model_dir, "top_n": 5, "max_history": 0, "weight": 1}).fit(data)
    history = data.train.matrix()
    users = np.array([0, 6, 7])  # 0 is warm; 6 and 7 have no history
    scores = model.score(users, history[users])
    base = model.retriever_.score(users, history[users])
    assert model.reranked_users_ == 2
    warm = torch.topk(scores[0], 8).indices
    assert torch.equal(warm, torch.topk(base[0].masked_fill(torch.as_tensor(history[0].toarray()[0] > 0), -torch.inf), 8).indices)
    for row in (1, 2):
        top5 = set(torch.topk(scores[row], 5).indices.tolist())
        assert top5 == set(torch.topk(base[row], 5).indices.tolist())  # the LLM only reorders the top 5
        rest = torch.argsort(scores[row], descending=True)[5:].tolist()
        assert rest == [i for i in torch.argsort(base[row], descending=True, stable=True).tolist() if i not in top5]


def test_candidate_protocol_ranks_exactly_the_given_candidates(tiny_model_dir) -> None:  # noqa: F811
    data = tiny_data()
    model = make_model("hybrid+llm", {"model": tiny_model_dir, "max_history": 0, "weight": 1,
                                     "retriever_params": {"neighbours": 3, "steps": 5}}).fit(data)
    users = np.array([6, 7])
    candidates = np.array([[0, 3, 5, 9], [1, 2, 10, 11]])
    scores = model.score_candidates(users, sp.csr_matrix((2, 12), dtype=np.float32), candidates)
    assert scores.shape == (2, 4)
    assert sorted(scores[0].tolist()) == [1.0, 2.0, 3.0, 4.0]  # a full order over the 4 candidates


def test_an_llm_row_reranks_the_fitted_retriever_of_its_table(tiny_model_dir) -> None:  # noqa: F811
    """``hybrid+llm`` in an evaluation reuses the ``hybrid`` row's fitted model (same params), not a refit."""
    data = tiny_data()
    hybrid_params = {"neighbours": 3, "steps": 5}
    config = ExperimentConfig(models=["hybrid", "hybrid+llm"],
                              params={"hybrid": hybrid_params, "hybrid+llm": {"model": tiny_model_dir}})
    prepared = SimpleNamespace(fit_data=data, fit_fingerprint=fingerprint(data))
    fitted: dict = {}
    table_hybrid, _ = fitted_model("hybrid", hybrid_params, config, prepared, fitted)
    reranked, _ = fitted_model("hybrid+llm", {"model": tiny_model_dir}, config, prepared, fitted)
    assert reranked.retriever_ is table_hybrid
    assert len(fitted) == 2


def test_fusion_weight_0_reproduces_the_retriever_exactly(tiny_model_dir) -> None:  # noqa: F811
    data = tiny_data()
    model = make_model("hybrid+llm", {"model": tiny_model_dir, "max_history": 4, "weight": 0,
                                     "retriever_params": {"neighbours": 3, "steps": 5}}).fit(data)
    users = np.arange(8)
    history = data.train.matrix()
    base = mask_history(model.retriever_.score(users, history).float(), history)
    assert torch.equal(model.score(users, history), base)
    candidates = np.tile(np.arange(0, 12, 2), (8, 1))
    assert torch.equal(model.score_candidates(users, history, candidates),
                       model.retriever_.score_candidates(users, history, candidates).float())
    assert model.reranked_users_ == 0  # the LLM was never called
    assert not hasattr(model.reranker_, "model_")  # nor even loaded


def two_circles(n_users: int = 60, n_items: int = 40) -> FitData:
    """Even users like even items, odd users odd ones; popularity alone cannot tell them apart."""
    rng = np.random.default_rng(0)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(np.arange(u % 2, n_items, 2), 6, replace=False)]
    train = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item"]), user_ids=range(n_users),
                                    item_ids=range(n_items))
    titles = [f"Film {i}" for i in range(n_items)]
    return FitData(train=train, item_text=titles, item_titles=titles, seed=0)


@pytest.mark.parametrize(("llm_knows", "expected"), [("taste", "positive"), ("the opposite", 0.0)])
def test_the_fusion_weight_is_chosen_on_rehearsed_new_users(llm_knows: str, expected: object) -> None:
    """An LLM that knows each user's taste earns a weight above 0; one that is always wrong gets 0,
    so the fused list is never below the retriever's on the rehearsal."""
    sign = 1.0 if llm_knows == "taste" else -1.0
    model = make_model("llm", {"max_history": 2, "valid_users": 40})

    def fake_llm(user: int, known: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return sign * (candidates % 2 == user % 2).astype(np.float64)

    model._llm_scores = fake_llm  # the LLM itself is never loaded
    model.fit(two_circles())
    chosen = model.chosen()
    by_weight = chosen["rehearsal"]["by weight"]
    assert set(by_weight) == {"0", "0.25", "0.5", "0.75", "1"} and chosen["rehearsal"]["rehearsal users"] == 40
    if expected == "positive":
        assert model.weight_ > 0 and by_weight[f"{model.weight_:g}"]["ndcg@20"] > by_weight["0"]["ndcg@20"]
    else:
        assert model.weight_ == 0


def test_bad_fusion_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="weight must lie in"):
        make_model("llm", {"weight": 1.5}).fit(tiny_data())
    with pytest.raises(ValueError, match="weights must contain 0"):
        make_model("llm", {"weights": [0.5, 1.0]}).fit(tiny_data())
