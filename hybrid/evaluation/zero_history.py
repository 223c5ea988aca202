"""Peers as a practitioner runs them: popularity for users with no history, where a model has no prior.

GF-CF, BSPM, LightGCN and content kNN without profile text give a user with no known interaction a
list decided by ties or untrained embeddings; nobody deploys that. A model whose
``zero_history_prior`` is False is ranked here with the training period's popularity for those users
(and the table says so); its scores for everyone else are its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.models.base import FitData, Recommender


class PopularityForZeroHistory(Recommender):
    """``model``'s scores, with ``prior`` (float32 [n_items]) for rows of an empty history."""

    zero_history_prior = True

    def __init__(self, model: Recommender, prior: np.ndarray) -> None:
        self.model = model
        self.prior = torch.as_tensor(np.asarray(prior, np.float32))

    def fit(self, data: FitData) -> Self:
        raise TypeError("PopularityForZeroHistory wraps a fitted model; fit the model itself")

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        scores = self.model.score(users, history)
        empty = np.flatnonzero(np.diff(history.indptr) == 0)
        if len(empty):
            rows = torch.as_tensor(empty, device=scores.device)
            scores[rows] = self.prior.to(scores.device, scores.dtype)
        return scores

    def chosen(self) -> dict[str, Any]:
        return self.model.chosen()


def as_practitioner(model: Recommender, popularity: np.ndarray) -> tuple[Recommender, str]:
    """(the model to rank with, what ranks zero-history users: "own" or "popularity")."""
    if model.zero_history_prior:
        return model, "own"
    return PopularityForZeroHistory(model, popularity), "popularity"
