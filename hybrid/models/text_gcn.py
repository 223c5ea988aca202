"""``text_gcn``: training-free text graph convolution, the TFCE peer (arXiv 2510.12461).

Item text vectors are propagated over the normalised user-item graph as LightGCN propagates
embeddings, with no weights and no training; a user is the mean of their items' vectors:

    X⁰ = normalised item text vectors [n_items, d],   U⁰ = mean of each user's items' X⁰,
    Xˡ⁺¹ = R̃ᵀ Uˡ,   Uˡ⁺¹ = R̃ Xˡ,   R̃ = D_u^-1/2 R D_i^-1/2,
    item vector = normalise(Σ_l Xˡ / (L + 1)),   score(u, i) = mean of u's history vectors · item vector.

A new item has no edges, so it keeps its text vector (Xˡ = 0 for l ≥ 1 before the normalisation);
the row normalisation puts it on the same scale as warm items. Every step is a sparse product:
the cost is O(L · nnz · d), nothing quadratic in the catalogue. This is the closest published
design to the hybrid's content path and the bar its new-item rankings must clear.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.interactions import merged
from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.models.base import FitData, Recommender, dot_candidates, register
from hybrid.models.content import sparse_rows
from hybrid.persistence import atomic_folder, check_shape, verify_folder, write_manifest

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "items.safetensors"


@dataclass
class TextGCNConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    layers: int = 2  # L: propagation steps over the bipartite graph (user layers and item layers alternate)

    def __post_init__(self) -> None:
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 0:
            raise ValueError(f"text_gcn.layers must be an integer >= 0, got {self.layers!r}")


def propagate_text(text: np.ndarray, graph: sp.csr_matrix, layers: int) -> np.ndarray:
    """float32 [n_items, d]: the row-normalised layer mean of ``text`` propagated ``layers`` times
    over the binary user-item ``graph`` [n_users, n_items] (see the module docstring)."""
    binary = (graph > 0).astype(np.float32).tocsr()
    user_deg = np.asarray(binary.sum(1)).ravel()
    item_deg = np.asarray(binary.sum(0)).ravel()
    norm = sp.diags(1 / np.sqrt(np.maximum(user_deg, 1))) @ binary @ sp.diags(1 / np.sqrt(np.maximum(item_deg, 1)))
    norm_t = norm.T.tocsr()
    items = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    users = (sp.diags(1 / np.maximum(user_deg, 1)) @ binary) @ items
    total = items.copy()
    for _ in range(layers):
        items, users = norm_t @ users, norm @ items
        total += items
    total /= layers + 1
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class TextGCN(Recommender):
    """The TFCE-style peer (see the module docstring)."""

    def __init__(self, config: TextGCNConfig | None = None) -> None:
        self.config = config or TextGCNConfig()

    def fit(self, data: FitData) -> Self:
        if data.item_text is None:
            raise ValueError("text_gcn needs item text; this data set has none")
        self.device_ = data.device
        text = encode_texts(data.item_text, self.config.encoder)
        graph = merged(data.train, data.valid).matrix()
        self.items_ = torch.as_tensor(propagate_text(text, graph, self.config.layers), device=data.device)
        return self

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d]: the mean propagated vector of each user's known items (zero with none)."""
        return sparse_rows(history, self.device_) @ self.items_

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.user_factors(users, history) @ self.items_.T

    def item_factors(self) -> torch.Tensor:
        return self.items_

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        return dot_candidates(self.user_factors(users, history), self.items_, candidates)

    def save(self, path: str | Path) -> None:
        """The propagated item vectors and the config, atomically (:mod:`hybrid.persistence`); what
        scoring needs, so a loaded model scores without the encoder."""
        if not hasattr(self, "items_"):
            raise RuntimeError("TextGCN is not fitted; nothing to save")
        with atomic_folder(path) as folder:
            save_file({"items": self.items_.detach().cpu().contiguous()}, str(folder / WEIGHTS_FILE))
            meta = {"model": "text_gcn", "config": dataclasses.asdict(self.config)}
            (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
            write_manifest(folder, "text_gcn", {"items": list(self.items_.shape)})

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """Read a folder written by :meth:`save`, every file checked first (a ``ValueError`` names the bad one)."""
        path = Path(path)
        manifest = verify_folder(path, "text_gcn")
        meta = json.loads((path / CONFIG_FILE).read_text())
        model = cls(from_dict(TextGCNConfig, meta["config"], f"{path / CONFIG_FILE}: config"))
        model.device_ = torch.device(device)
        model.items_ = load_file(str(path / WEIGHTS_FILE), device=str(model.device_))["items"]
        check_shape("items", model.items_.shape, manifest["shapes"]["items"], path / WEIGHTS_FILE)
        return model


@register("text_gcn")
def _text_gcn(params: dict[str, Any]) -> Recommender:
    return TextGCN(from_dict(TextGCNConfig, params, "text_gcn"))
