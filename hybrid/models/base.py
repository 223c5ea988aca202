"""What every model offers the evaluation: ``fit`` on training data, ``score`` a batch of users.

Models see only internal indices. ``score`` receives each user's *known history at scoring
time* (training items plus anything revealed later, e.g. a cold user's first interactions), so a
model fitted once can fold in users it never trained on, without a refit.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.data.interactions import Interactions


@dataclass
class FitData:
    """Everything a model may learn from.

    Attributes:
        train: training interactions over the experiment's full id universe (cold items and
            cold users are present with zero interactions).
        valid: held-out interactions carved from the training period, for early stopping and
            choosing hyper-parameters; never the test set. Same id universe, or None.
        item_text: one string per item index ("" when unknown), or None.
        item_titles: one short display title per item index (for LLM prompts), or None.
        user_text: one profile string per user index (side information), or None.
        device: where to train and score.
        seed: makes a CPU fit repeatable.

    Nothing here describes the evaluation's test split (its items, kind or size): a model
    receives what ``HybridRecommender.fit`` receives from a user, the catalogue included.
    """

    train: Interactions
    valid: Interactions | None = None
    item_text: list[str] | None = None
    item_titles: list[str] | None = None
    user_text: list[str] | None = None
    device: torch.device = torch.device("cpu")
    seed: int = 0


class Recommender(ABC):
    """Base class of every model in the registry.

    ``zero_history_prior``: whether the model ranks a user with no known interaction by something
    of its own (popularity, side information, a profile). Where it does not (every item scores the
    same, or an untrained embedding decides), the evaluation ranks such users by popularity, as a
    practitioner would, and says so.
    """

    zero_history_prior: bool = False

    @abstractmethod
    def fit(self, data: FitData) -> Self:
        """Learn from ``data``; returns self."""

    @abstractmethod
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """Scores of every item for a batch of users.

        Args:
            users: int64 [b] internal user indices.
            history: CSR [b, n_items], row r = the items user ``users[r]`` is known to have
                interacted with at scoring time (masked later by the caller).

        Returns:
            float32 [b, n_items] on the model's device; higher is better.
        """

    def chosen(self) -> dict[str, Any]:
        """What fitting chose (epochs, calibrated values, ...), for the record in results.json."""
        return {}

    def item_factors(self) -> torch.Tensor | None:
        """float32 [n_items, d] vectors whose inner products with :meth:`user_factors` give the
        score, or the part of it an index can search (ANN candidate generation); None where the
        score has no such form."""
        return None

    @property
    def has_factors(self) -> bool:
        """Whether :meth:`item_factors` gives vectors, without building them (subclasses answer cheaply)."""
        return self.item_factors() is not None

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d] query vectors matching :meth:`item_factors` (same arguments as ``score``)."""
        raise NotImplementedError(f"{type(self).__name__} has no factor form (item_factors() is None)")

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """Scores of given candidates only, float32 [b, m] (the LLMRank protocol: rank m given items).

        Args:
            candidates: int64 [b, m] item indices per user.

        This default scores every item and keeps the candidates; models that can score a few
        items for less (dot products, sparse columns) override it.
        """
        scores = self.score(users, history)
        return scores.gather(1, torch.as_tensor(candidates, dtype=torch.int64, device=scores.device))

    def score_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """float32 [b, m]: every user's scores of the same items (int64 [m]); this default scores
        every item and keeps those, models with a cheaper form (dot products) override it."""
        scores = self.score(users, history)
        return scores[:, torch.as_tensor(items, dtype=torch.int64, device=scores.device)]


    def residual_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """float32 [b, m]: :meth:`score_columns` less the factor part (``user_factors`` ·
        ``item_factors``), which a caller with the factors can read per pair instead; this default
        takes the difference, models whose score has that form answer cheaper."""
        scores = self.score_columns(users, history, items).float()
        if self.has_factors:
            rows = self.item_factors()[torch.as_tensor(items, dtype=torch.int64, device=scores.device)]
            scores -= self.user_factors(users, history).float() @ rows.float().T
        return scores


def dot_candidates(queries: torch.Tensor, items: torch.Tensor, candidates: np.ndarray) -> torch.Tensor:
    """float32 [b, m]: each query [b, d] with its own candidates' rows of ``items`` [n_items, d]."""
    chosen = items[torch.as_tensor(candidates, dtype=torch.int64, device=items.device)]
    return torch.einsum("bd,bmd->bm", queries, chosen)


ModelFactory = Callable[[dict[str, Any]], Recommender]
MODELS: dict[str, ModelFactory] = {}

# The registry's list of the built-in models: name -> the module whose import registers it. A
# module is imported (importlib, so this module imports none of them) on the first lookup of one
# of its names; models registered elsewhere with :func:`register` need no entry.
BUILTIN_MODELS: dict[str, str] = {
    "popularity": "hybrid.models.simple",
    "random": "hybrid.models.simple",
    "trending": "hybrid.models.trending",
    "content": "hybrid.models.content",
    "mf": "hybrid.models.graph_models",
    "lightgcn": "hybrid.models.graph_models",
    "lightgcn_sampled": "hybrid.models.graph_models",
    "ngcf": "hybrid.models.graph_models",
    "gf_cf": "hybrid.models.graph_filters",
    "bspm": "hybrid.models.graph_filters",
    "ease": "hybrid.models.ease",
    # The hybrid stage's models.
    "text_gcn": "hybrid.models.text_gcn",
    "hybrid": "hybrid.fusion.model",
    "llm": "hybrid.llm.rerank_model",
    "hybrid+llm": "hybrid.llm.rerank_model",
}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Make a model available to ``hybrid-eval`` under ``name``."""

    def add(factory: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        MODELS[name] = factory
        return factory

    return add


def model_names() -> list[str]:
    """Every model name the registry knows (built-in or registered), sorted."""
    return sorted(set(MODELS) | set(BUILTIN_MODELS))


def lookup(name: str) -> ModelFactory | None:
    """The factory registered under ``name``, importing its built-in module on first use; None if unknown."""
    if name not in MODELS and name in BUILTIN_MODELS:
        importlib.import_module(BUILTIN_MODELS[name])
        if name not in MODELS:
            raise RuntimeError(f"{BUILTIN_MODELS[name]} does not register model {name!r}")
    return MODELS.get(name)


# Names an older config may still hold, and what replaced them.
REMOVED_MODELS = {"hybrid_lightgcn": "the LightGCN-over-text hybrid (HybridConfig) was retired; use 'hybrid' "
                                     "(FusionConfig), or 'text_gcn' for text vectors propagated over the graph"}


def check_name(name: str, hint: str = "") -> ModelFactory:
    """The factory of model ``name``; a ValueError naming the known models (and ``hint``) if there is none."""
    if name in REMOVED_MODELS:
        raise ValueError(f"model {name!r} was removed: {REMOVED_MODELS[name]}")
    factory = lookup(name)
    if factory is None:
        raise ValueError(f"unknown model {name!r}; known models are {model_names()}{hint}")
    return factory


def make_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """Build a registered model from its config parameters.

    Two-stage retrieval (``retrieval`` among the parameters, or a name ``NAME+ann``) wraps a model
    at the caller's side: :func:`hybrid.retrieval.build.build_model`.
    """
    params = dict(params or {})
    factory = check_name(name)
    if "retrieval" in params:
        raise ValueError(f"model {name!r}: 'retrieval' wraps a model in two-stage ranking; build it with "
                         "hybrid.retrieval.build.build_model")
    return factory(params)


def import_builtins() -> None:
    """Import every built-in model's module now (a run that should use one version of their code
    throughout, or code that reads :data:`MODELS` directly)."""
    for module in sorted(set(BUILTIN_MODELS.values())):
        importlib.import_module(module)
