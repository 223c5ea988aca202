"""Model registry: :data:`~hybrid.models.base.BUILTIN_MODELS` names every built-in model and the
module that registers it, imported on first lookup (:func:`~hybrid.models.base.make_model`)."""

from hybrid.models.base import MODELS, FitData, Recommender, make_model, model_names, register

__all__ = ["MODELS", "FitData", "Recommender", "make_model", "model_names", "register"]
