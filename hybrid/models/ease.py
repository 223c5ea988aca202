"""EASE (Steck, WWW 2019): a closed-form item-item regression with a zero diagonal,

    s_u = r_u B,  B = I − G⁻¹ diag(1 / diag(G⁻¹)),  G = RᵀR + λ I,

dense n_items × n_items (the inverse costs n³ flops and B holds n² floats), so it refuses above
``max_items``; the hybrid's ``auto`` tries it only on small catalogues (hybrid.fusion.halves).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.graph.adjacency import csr_tensor
from hybrid.models.base import FitData, Recommender, register
from hybrid.models.graph_filters import FILTER_CONFIG, FILTER_FILE, binary, fitting_matrix
from hybrid.persistence import atomic_folder, verify_folder, write_manifest


@dataclass
class EASEConfig:
    reg: float = 250.0  # λ on the Gram matrix's diagonal
    max_items: int = 30_000  # the dense inverse needs n_items² floats; refuse above this
    fit_on: Literal["train", "train+valid"] = "train+valid"



class EASE(Recommender):
    """EASE: a closed-form item-item regression with a zero diagonal (dense; see the docstring)."""

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config or EASEConfig()

    def fit(self, data: FitData) -> Self:
        n_items = data.train.n_items
        if n_items > self.config.max_items:
            raise ValueError(
                f"ease needs a dense {n_items} x {n_items} inverse ({n_items ** 2 * 4 / 2 ** 30:.1f} GiB); "
                f"this data set has more than max_items={self.config.max_items} items: use gf_cf or bspm"
            )
        self.device_ = torch.device(data.device)
        matrix = fitting_matrix(data, self.config.fit_on)
        gram = torch.as_tensor((matrix.T @ matrix).toarray(), dtype=torch.float64, device=self.device_)
        gram.diagonal().add_(self.config.reg)
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(gram))  # G is positive definite (λ > 0)
        weights = -inverse / inverse.diagonal()
        weights.fill_diagonal_(0.0)
        self.weights_ = weights.float()
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        rows = csr_tensor(binary(history), self.device_)
        return rows @ self.weights_

    def item_relation(self, known: np.ndarray, wanted: np.ndarray) -> torch.Tensor:
        """float32 [len(known), len(wanted)]: each wanted item's score for a user whose only item is
        each known one, read off the weights (what :meth:`score` gives a one-item history, without
        a sparse product over the whole catalogue per known item)."""
        if self.weights_.device.type == "cpu":  # numpy: a torch gather per user costs more than the read
            return torch.from_numpy(self.weights_.numpy()[np.asarray(known)[:, None], np.asarray(wanted)[None, :]])
        index = lambda items: torch.as_tensor(items, dtype=torch.int64, device=self.device_)  # noqa: E731
        return self.weights_[index(known)[:, None], index(wanted)[None, :]]

    def save(self, path: str | Path) -> None:
        """The dense item-item weights, atomically."""
        with atomic_folder(path) as folder:
            save_file({"weights": self.weights_.detach().cpu().contiguous()}, str(folder / FILTER_FILE))
            (folder / FILTER_CONFIG).write_text(json.dumps({"model": "ease", "config": dataclasses.asdict(self.config)}))
            write_manifest(folder, "ease")

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """Read a folder written by :meth:`save`, every file checked first."""
        path = Path(path)
        verify_folder(path, "ease")
        meta = json.loads((path / FILTER_CONFIG).read_text())
        model = cls(from_dict(EASEConfig, meta["config"], f"{path / FILTER_CONFIG}: config"))
        model.device_ = torch.device(device)
        model.weights_ = load_file(str(path / FILTER_FILE), device=str(model.device_))["weights"]
        return model


@register("ease")
def _ease(params: dict[str, Any]) -> Recommender:
    config = from_dict(EASEConfig, params, "ease")
    if not config.reg > 0:
        raise ValueError(f"ease.reg must be > 0, got {config.reg!r}")
    return EASE(config)
