"""The ``llm`` / ``hybrid+llm`` models: who gets reranked, and what may move."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from test_reranker import one_torch_thread, tiny_model_dir  # noqa: F401  (fixtures)

from hybrid.config import ExperimentConfig
from hybrid.data.interactions import Interactions
from hybrid.evaluation.evaluate import fingerprint, fitted_model
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
    model = make_model("llm", {"model": tiny_model_dir, "top_n": 5, "max_history": 0}).fit(data)
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
    model = make_model("hybrid+llm", {"model": tiny_model_dir, "max_history": 0,
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
