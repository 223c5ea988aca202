"""Building a model with its retrieval: the caller's side of two-stage ranking.

A model does not know its index: :func:`hybrid.models.base.make_model` builds the bare model, and
:func:`build_model` wraps it in :class:`~hybrid.retrieval.two_stage.TwoStage` where the config asks
(``retrieval: {kind: ann, ...}`` among the parameters, or the name ``NAME+ann``).
"""

from __future__ import annotations

from typing import Any

from hybrid.models.base import Recommender, check_name, lookup, make_model
from hybrid.retrieval.two_stage import TwoStage, retrieval_config

ANN_SUFFIX = "+ann"
ANN_HINT = f" (and any of them with {ANN_SUFFIX!r}: two-stage through an ANN index)"


def build_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """Build a registered model from its config parameters; ``retrieval: {kind: ann, ...}`` among
    them, or the name ``NAME+ann``, wraps it in :class:`~hybrid.retrieval.two_stage.TwoStage`."""
    params = dict(params or {})
    base = name.removesuffix(ANN_SUFFIX)
    if name.endswith(ANN_SUFFIX) and lookup(name) is None and lookup(base) is not None:
        name = base  # "gf_cf+ann": gf_cf ranked two-stage, a row beside gf_cf
        params["retrieval"] = {**(params.get("retrieval") or {}), "kind": "ann"}
    check_name(name, ANN_HINT)
    retrieval = params.pop("retrieval", None)
    model = make_model(name, params)
    if retrieval is None:
        return model
    config = retrieval_config(retrieval)
    return model if config.kind == "exact" else TwoStage(model, config)
