"""A fitted hybrid as a folder: JSON config, safetensors arrays, the items' text and the graph half in ``warm/``.

The items' text travels so that ``partial_fit`` can refit a graph half that reads it (``text_gcn``)
as ``fit`` did. Users' side text stays out of the folder: their encoded vectors are what scoring needs
(the users' profile text is saved and read by its own part, :class:`hybrid.fusion.user_text.UserTextState`,
into the same two files). Every
array's shape is checked against the others on reading, so a damaged folder is refused with the
file and array at fault named.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from hybrid.config import from_dict
from hybrid.data.buckets import EDGES
from hybrid.fusion.config import FusionConfig
from hybrid.fusion.floor import ZeroHistoryPrior
from hybrid.fusion.new_users import NEW_USER_FEATURES, NO_SIDE, USER_BUCKETS, NewUserPath
from hybrid.fusion.signals import FEATURES
from hybrid.fusion.user_side import SideRegression
from hybrid.fusion.user_text import UserTextState
from hybrid.models.base import Recommender, make_model
from hybrid.persistence import check_shape

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "fusion.safetensors"
WARM_DIR = "warm"
ITEM_TEXT_FILE = "item_text.json"


class FusionHybrid(Protocol):
    """What a saved hybrid holds (:class:`hybrid.fusion.model.FusionHybrid`)."""

    name: str
    config: FusionConfig
    device_: torch.device
    warm_name_: str
    warm_: Recommender
    text_: torch.Tensor
    neighbours_: sp.csr_matrix
    counts_: np.ndarray
    gate_weight_: torch.Tensor
    gate_bias_: torch.Tensor
    validation_: dict[str, Any]
    new_users_: NewUserPath
    user_text_: UserTextState
    item_text_: list[str] | None
    seed_: int
    added_: int
    trend_days_: float | None
    recent_: np.ndarray | None

    @property
    def warm_items_(self) -> int: ...

    def set_counts(self, counts: np.ndarray) -> None: ...


REQUIRED = ("text", "counts", "neighbours.indptr", "neighbours.indices", "neighbours.data", "gate.weight", "gate.bias")


def write(model: FusionHybrid, folder: Path) -> None:
    """The model's files in ``folder`` (the caller makes it atomic and writes the manifest)."""
    model.warm_.save(folder / WARM_DIR)
    path = model.new_users_
    profiles, profile_tensors = model.user_text_.saved(path.user_vectors)
    meta = {"model": model.name, "config": dataclasses.asdict(model.config), "warm_model": model.warm_name_,
            "validation": model.validation_, "added": getattr(model, "added_", 0), "seed": model.seed_,
            "trend_days": model.trend_days_,
            "profiles": profiles,
            "new_users": path.validation,
            "zero_history_prior": {"kind": path.prior.kind, "window_days": path.prior.window_days,
                                   "record": path.prior.record},
            "side": None if path.side is None else [path.side.ridge_, path.side.power_]}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    if model.item_text_ is not None:
        (folder / ITEM_TEXT_FILE).write_text(json.dumps(model.item_text_))
    n = model.neighbours_
    tensors = {
        "text": model.text_, "counts": torch.as_tensor(model.counts_),
        "neighbours.indptr": torch.as_tensor(n.indptr.astype(np.int64)),
        "neighbours.indices": torch.as_tensor(n.indices.astype(np.int64)),
        "neighbours.data": torch.as_tensor(n.data), "gate.weight": model.gate_weight_, "gate.bias": model.gate_bias_,
        "user_counts": torch.as_tensor(path.user_counts), **profile_tensors,
    }
    for name, (weight, bias) in path.gates.items():
        tensors[f"new_users.{name}.weight"], tensors[f"new_users.{name}.bias"] = weight, bias
    if path.user_vectors is not None:
        tensors["new_users.vectors"] = path.user_vectors
    if path.side is not None:
        tensors["new_users.side"] = path.side.weights_
    if path.prior.scores is not None:
        tensors["new_users.prior"] = path.prior.scores
    if model.recent_ is not None:
        tensors["recent"] = torch.as_tensor(model.recent_)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / WEIGHTS_FILE))


def read(model: FusionHybrid, folder: Path) -> None:
    """Fill the unfitted ``model`` (its ``device_`` set) from ``folder``, shapes checked."""
    tensors = load_file(str(folder / WEIGHTS_FILE), device=str(model.device_))
    meta = json.loads((folder / CONFIG_FILE).read_text())
    where = folder / WEIGHTS_FILE
    missing = sorted(set(REQUIRED) - set(tensors))
    if missing:
        raise ValueError(f"{where} lacks the arrays {missing}")
    n = tensors["text"].shape[0]
    check_shape("counts", tensors["counts"].shape, (n,), where)
    check_shape("neighbours.indptr", tensors["neighbours.indptr"].shape, (n + 1,), where)
    check_shape("gate.weight", tensors["gate.weight"].shape, (len(FEATURES), len(EDGES) + 1), where)
    check_shape("gate.bias", tensors["gate.bias"].shape, (len(EDGES) + 1,), where)
    indices = tensors["neighbours.indices"].cpu().numpy()
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"{where}: neighbours.indices point outside the {n} items")
    model.warm_name_ = meta["warm_model"]
    warm_class = type(make_model(model.warm_name_, model.config.warm_params_of(model.warm_name_)))
    model.warm_ = warm_class.load(folder / WARM_DIR, model.device_)
    model.text_ = tensors["text"]
    model.neighbours_ = sp.csr_matrix(
        (tensors["neighbours.data"].cpu().numpy(), indices, tensors["neighbours.indptr"].cpu().numpy()), shape=(n, n))
    model.gate_weight_, model.gate_bias_ = tensors["gate.weight"], tensors["gate.bias"]
    model.validation_ = meta["validation"]
    model.item_text_ = read_item_text(folder / ITEM_TEXT_FILE, n)
    model.seed_ = meta.get("seed", 0)  # folders saved before the seed travelled were refitted with 0
    if meta["added"]:
        model.added_ = meta["added"]
    warm_items = getattr(getattr(model.warm_, "graph_", None), "matrix", None)
    if warm_items is not None and warm_items.shape[1] != model.warm_items_:
        raise ValueError(f"{folder / WARM_DIR}: the graph half has {warm_items.shape[1]} items, "
                         f"{where} has {model.warm_items_} (+{meta['added']} added); the folder is inconsistent")
    model.new_users_ = read_new_users(tensors, meta, where)
    model.user_text_ = UserTextState.from_saved(meta, tensors, where, model.config.encoder, model.device_)
    model.trend_days_ = meta.get("trend_days")
    model.recent_ = tensors["recent"].cpu().numpy() if "recent" in tensors else None
    if model.recent_ is not None:
        check_shape("recent", model.recent_.shape, tuple(tensors["counts"].shape), where)
    model.set_counts(tensors["counts"].cpu().numpy())


def read_item_text(path: Path, n_items: int) -> list[str] | None:
    """One text per item, or None for a folder saved before the text travelled (its graph half
    can still be refitted unless it reads item text)."""
    if not path.exists():
        return None
    texts = json.loads(path.read_text())
    if not isinstance(texts, list) or len(texts) != n_items or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{path} must hold a list of {n_items} strings, one per item; the folder is inconsistent")
    return texts


def read_config(folder: Path) -> FusionConfig:
    """The saved model's settings."""
    meta = json.loads((folder / CONFIG_FILE).read_text())
    return from_dict(FusionConfig, meta["config"], f"{folder / CONFIG_FILE}: config")


def read_new_users(tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: Path) -> NewUserPath:
    """The new-user path's arrays, shapes checked (a model saved without them has none)."""
    n_items = tensors["text"].shape[0] - meta["added"]
    gates = {}
    for name in (*USER_BUCKETS, *(b + NO_SIDE for b in USER_BUCKETS)):
        if f"new_users.{name}.weight" in tensors:
            weight, bias = tensors[f"new_users.{name}.weight"], tensors[f"new_users.{name}.bias"]
            check_shape(f"new_users.{name}.weight", weight.shape, (len(NEW_USER_FEATURES), len(EDGES) + 1), where)
            gates[name] = (weight, bias)
    vectors = tensors.get("new_users.vectors")
    counts = tensors["user_counts"].cpu().numpy() if "user_counts" in tensors else np.zeros(0, np.int64)
    if vectors is not None:
        check_shape("new_users.vectors", vectors.shape[:1], (len(counts),), where)
    side = None
    if "new_users.side" in tensors:
        side = SideRegression()
        side.weights_ = tensors["new_users.side"]
        side.ridge_, side.power_ = meta.get("side") or (None, None)
        if vectors is not None:
            check_shape("new_users.side", side.weights_.shape, (vectors.shape[1] + 1, n_items), where)
    saved = meta.get("zero_history_prior") or {}  # older folders: the gate
    prior = ZeroHistoryPrior(saved.get("kind", "gate"), saved.get("window_days"), tensors.get("new_users.prior"),
                             saved.get("record") or {})
    if prior.scores is not None:
        check_shape("new_users.prior", prior.scores.shape, (n_items,), where)
    return NewUserPath(vectors, side, gates, counts, meta.get("new_users") or {}, prior)
