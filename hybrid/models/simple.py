"""Reference baselines: popularity and random."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.models.base import FitData, Recommender, register


class Popularity(Recommender):
    """Scores every item by its number of training users, validation rows included: they are
    training data, and the latest of it (cold items score 0)."""

    zero_history_prior = True

    def fit(self, data: FitData) -> Self:
        counts = data.train.item_counts().astype(np.float32)
        if data.valid is not None:
            counts += data.valid.item_counts()
        self.device_ = data.device
        self.scores_ = torch.as_tensor(counts, device=data.device)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.scores_.expand(len(users), -1).clone()


@dataclass
class RandomConfig:
    seed: int | None = None  # None: the experiment seed


class RandomModel(Recommender):
    """Uniform random scores: the floor every model must clear (for every user alike)."""

    zero_history_prior = True

    def __init__(self, config: RandomConfig | None = None) -> None:
        self.config = config or RandomConfig()

    def fit(self, data: FitData) -> Self:
        seed = data.seed if self.config.seed is None else self.config.seed
        self.generator_ = torch.Generator(device="cpu").manual_seed(seed)
        self.n_items_ = data.train.n_items
        self.device_ = data.device
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return torch.rand(len(users), self.n_items_, generator=self.generator_).to(self.device_)


@register("popularity")
def _popularity(params: dict[str, Any]) -> Recommender:
    from_dict(dict, params, "popularity")  # takes no parameters; rejects any given
    return Popularity()


@register("random")
def _random(params: dict[str, Any]) -> Recommender:
    return RandomModel(from_dict(RandomConfig, params, "random"))
