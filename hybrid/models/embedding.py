"""What every BPR embedding model shares as a :class:`~hybrid.models.base.Recommender`: fit through
the shared trainer, score by dot products batched on the device, fold in users it never trained
on, and save/load with safetensors + JSON (no pickle).

User vectors at scoring time:
    warm user (≥ 1 training interaction)       its trained final embedding e_u.
    no training interactions, history given    fold-in, no refit: the mean final embedding of its
                                               history items, refined by a few BPR steps on the
                                               user's vector alone (:mod:`hybrid.models.fold_in`).
    no training interactions, no history       the mean final embedding of the warm users: the
                                               population prior, which ranks items by their mean
                                               predicted preference (all zeros would tie every item).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.graph.adjacency import csr_tensor
from hybrid.models.base import FitData, Recommender, dot_candidates
from hybrid.models.bpr import BPRModel
from hybrid.models.fold_in import refine_by_bpr
from hybrid.models.train import TrainConfig, TrainResult, fit_bpr
from hybrid.persistence import atomic_folder, check_shape, verify_folder, write_manifest

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "embeddings.safetensors"


class EmbeddingRecommender(Recommender):
    """Base of the registered BPR models; subclasses say how to build their :class:`BPRModel`.

    Args:
        config: the model's config dataclass (``config_class``); defaults when None.

    Attributes (after ``fit`` or ``load``):
        user_embeddings_: float32 [n_users, d'] final user embeddings, on the device.
        item_embeddings_: float32 [n_items, d'] final item embeddings, on the device.
        user_counts_: int64 [n_users] training interactions per user (0: not trained on).
        fold_in_pool_: int64 items with training interactions (fold-in negatives).
        module_: the trained :class:`BPRModel` (``fit`` only).
        result_: the trainer's :class:`~hybrid.models.train.TrainResult` (``fit`` only).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]] = TrainConfig

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    @abstractmethod
    def build_module(self, data: FitData) -> BPRModel:
        """A freshly initialised :class:`BPRModel` for ``data`` (weights seeded by the caller)."""

    def fit(self, data: FitData, on_epoch: Callable[[dict[str, Any], BPRModel], None] | None = None) -> Self:
        """Train on ``data.train`` with early stopping on ``data.valid``; seeded, on ``data.device``.

        Args:
            data: training data, device and seed.
            on_epoch: passed to :func:`~hybrid.models.train.fit_bpr` (e.g. a benchmark's test curve).
        """
        self.config.validate()
        device = torch.device(data.device)
        seed = data.seed if self.config.seed is None else self.config.seed
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            module = self.build_module(data).to(device)
            self.result_: TrainResult = fit_bpr(
                module, data.train, self.config, valid=data.valid, device=device, seed=seed, on_epoch=on_epoch
            )
        with torch.no_grad():
            users, items = module.embeddings()
        self.module_ = module
        self.fold_in_pool_ = np.flatnonzero(data.train.item_counts() > 0)
        self.set_state(users.detach(), items.detach(), data.train.user_counts())
        return self

    def chosen(self) -> dict[str, Any]:
        """Epochs run, the epoch kept and why training stopped (empty for a loaded model)."""
        result = getattr(self, "result_", None)
        if result is None:
            return {}
        return {"epochs_run": len(result.history), "best_epoch": result.best_epoch, "stopped": result.stopped}

    def set_state(self, users: torch.Tensor, items: torch.Tensor, counts: np.ndarray) -> None:
        """Install final embeddings and per-user counts (after a fit, or from a saved folder)."""
        self.user_embeddings_ = users
        self.item_embeddings_ = items
        self.user_counts_ = np.asarray(counts, dtype=np.int64)
        warm = torch.as_tensor(self.user_counts_ > 0, device=users.device)
        self._prior = users[warm].mean(0) if bool(warm.any()) else torch.zeros_like(users[0])

    def user_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d'] scoring vectors of ``users`` (see the module docstring for the rules).

        Args:
            users: int64 [b] internal user indices.
            history: CSR [b, n_items] each user's known items at scoring time.
        """
        users = np.asarray(users, dtype=np.int64)
        device = self.user_embeddings_.device
        vectors = self.user_embeddings_[torch.as_tensor(users, device=device)].clone()
        cold = np.flatnonzero(self.user_counts_[users] == 0)
        if len(cold) == 0:
            return vectors
        vectors[torch.as_tensor(cold, device=device)] = self.fold_in(history[cold])
        return vectors

    def fold_in(self, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d'] vectors of users the model never trained on, from their known items
        (CSR [b, n_items]): the mean of those items' final embeddings refined by BPR steps
        (:func:`~hybrid.models.fold_in.refine_by_bpr`); the population prior for a row with no items."""
        device = self.user_embeddings_.device
        rows = sp.csr_matrix(history, dtype=np.float32)
        counts = np.diff(rows.indptr)
        rows.data = (1.0 / np.repeat(np.maximum(counts, 1), counts)).astype(np.float32)
        folded = csr_tensor(rows, device) @ self.item_embeddings_
        folded = refine_by_bpr(self.item_embeddings_, folded, rows, self.fold_in_pool_,
                               self.config.fold_in_steps, self.config.fold_in_lr)
        folded[torch.as_tensor(counts == 0, device=device)] = self._prior
        return folded

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, n_items] = user vectors @ final item embeddingsᵀ, on the model's device."""
        if not hasattr(self, "item_embeddings_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        return self.user_vectors(users, history) @ self.item_embeddings_.T

    def item_factors(self) -> torch.Tensor:
        return self.item_embeddings_

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.user_vectors(users, history)

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """The exact dot products for the candidates only: [b, m] from [b, d] and [b, m, d]."""
        return dot_candidates(self.user_vectors(users, history), self.item_embeddings_, candidates)

    def score_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """Dot products with the given items only: [b, d] @ [d, m]."""
        rows = self.item_embeddings_[torch.as_tensor(items, dtype=torch.int64, device=self.item_embeddings_.device)]
        return self.user_vectors(users, history) @ rows.T

    def residual_columns(self, users: np.ndarray, history: sp.csr_matrix, items: np.ndarray) -> torch.Tensor:
        """Nothing: the score is the factor part."""
        return torch.zeros(len(users), len(items), device=self.item_embeddings_.device)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``config.json`` and ``embeddings.safetensors`` (what scoring needs) into folder
        ``path`` atomically, with a checksummed manifest (:mod:`hybrid.persistence`)."""
        if not hasattr(self, "item_embeddings_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        with atomic_folder(path) as folder:
            self._write(folder)
            write_manifest(folder, self.name)

    def _write(self, path: Path) -> None:
        meta = {"model": self.name, "config": dataclasses.asdict(self.config)}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        tensors = {
            "user_embeddings": self.user_embeddings_.detach().cpu().contiguous(),
            "item_embeddings": self.item_embeddings_.detach().cpu().contiguous(),
            "user_counts": torch.as_tensor(self.user_counts_),
            "fold_in_pool": torch.as_tensor(self.fold_in_pool_),
        }
        save_file(tensors, str(path / WEIGHTS_FILE))

    @classmethod
    def _read_saved(cls, path: str | Path, device: torch.device | str) -> tuple[Self, dict[str, Any], dict[str, torch.Tensor]]:
        """(unfitted model with the saved config, the JSON metadata, the tensors) of a saved folder,
        every file checked first (a ``ValueError`` names the one at fault)."""
        path = Path(path)
        verify_folder(path, cls.name)
        meta: dict[str, Any] = json.loads((path / CONFIG_FILE).read_text())
        if meta.get("model") != cls.name:
            raise ValueError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        model = cls(from_dict(cls.config_class, meta["config"], str(path / CONFIG_FILE)))
        tensors = load_file(str(path / WEIGHTS_FILE), device=str(torch.device(device)))
        users = tensors["user_embeddings"].shape[0]
        check_shape("user_counts", tensors["user_counts"].shape, (users,), path / WEIGHTS_FILE)
        items = tensors.get("item_embeddings", tensors.get("graph_items"))
        pool = tensors["fold_in_pool"]
        if items is not None and len(pool) and (int(pool.min()) < 0 or int(pool.max()) >= items.shape[0]):
            raise ValueError(f"{path / WEIGHTS_FILE}: fold_in_pool points outside the {items.shape[0]} items")
        model.fold_in_pool_ = pool.cpu().numpy()
        return model, meta, tensors

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """Read a folder written by :meth:`save` into a model that scores as the saved one did."""
        model, _, tensors = cls._read_saved(path, device)
        model.set_state(tensors["user_embeddings"], tensors["item_embeddings"], tensors["user_counts"].cpu().numpy())
        return model
