"""Model registry: importing this package registers every built-in model."""

from hybrid.fusion import model as fusion_model  # noqa: F401  (registers hybrid)
from hybrid.llm import rerank_model  # noqa: F401  (registers llm and hybrid+llm)
from hybrid.models import (  # noqa: F401
    content,
    graph_filters,
    graph_models,
    simple,
    text_gcn,
)
from hybrid.models.base import MODELS, FitData, Recommender, make_model, register

__all__ = ["MODELS", "FitData", "Recommender", "make_model", "register"]
