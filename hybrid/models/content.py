"""Content-only baseline: text-embedding kNN to the user's history, or to their profile text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.graph.adjacency import csr_tensor
from hybrid.models.base import FitData, Recommender, dot_candidates, register


@dataclass
class ContentConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # Score users with no history from their profile text (side information), when given.
    use_user_text: bool = True


def sparse_rows(history: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """CSR [b, n] as a torch sparse CSR tensor on ``device`` (float32, row-normalised to a mean)."""
    counts = np.maximum(np.diff(history.indptr), 1).astype(np.float32)
    values = (history.data.astype(np.float32) > 0) / np.repeat(counts, np.diff(history.indptr))
    return csr_tensor(sp.csr_matrix((values, history.indices, history.indptr), shape=history.shape), device)


class ContentKNN(Recommender):
    """score(u, i) = cos(mean text vector of u's history, text vector of i).

    A user with no history is scored from their profile text through the same encoder; with
    neither, every item scores 0.
    """

    def __init__(self, config: ContentConfig | None = None) -> None:
        self.config = config or ContentConfig()

    @property
    def zero_history_prior(self) -> bool:  # type: ignore[override]
        """Profile text is a prior of its own; without it every item scores 0."""
        return getattr(self, "user_text_", None) is not None

    def fit(self, data: FitData) -> Self:
        if data.item_text is None:
            raise ValueError("content needs item text; this data set has none")
        self.device_ = data.device
        self.items_ = torch.as_tensor(encode_texts(data.item_text, self.config.encoder), device=data.device)
        self.user_text_ = data.user_text if self.config.use_user_text else None
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.user_factors(users, history) @ self.items_.T

    def item_factors(self) -> torch.Tensor:
        return self.items_

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        return dot_candidates(self.user_factors(users, history), self.items_, candidates)

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d] normalised profiles: the mean text vector of the history, else the profile text."""
        profile = sparse_rows(history, self.device_) @ self.items_
        empty = np.flatnonzero(np.diff(history.indptr) == 0)
        if len(empty) and self.user_text_ is not None:
            texts = [self.user_text_[users[r]] for r in empty]
            profile[torch.as_tensor(empty, device=self.device_)] = torch.as_tensor(
                encode_texts(texts, self.config.encoder), device=self.device_
            )
        return torch.nn.functional.normalize(profile, dim=1)


@register("content")
def _content(params: dict[str, Any]) -> Recommender:
    return ContentKNN(from_dict(ContentConfig, params, "content"))
