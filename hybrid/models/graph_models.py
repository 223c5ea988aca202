"""MF-BPR, NGCF and LightGCN, registered for ``hybrid-eval`` as ``mf``, ``ngcf`` and ``lightgcn``
(and ``lightgcn_sampled``: LightGCN with ``propagation: sampled``, PinSage neighbourhoods).

Each model is two pieces: an ``nn.Module`` (:class:`~hybrid.models.train.BPRModel`: layer-0 embeddings
and their propagation) and a :class:`~hybrid.models.embedding.EmbeddingRecommender` that builds it
from :class:`~hybrid.models.base.FitData`, trains it with the shared BPR trainer and scores with its
final embeddings. Graph models propagate over the symmetric-normalised adjacency of
:func:`hybrid.graph.adjacency.interaction_adjacency`, built once per fit on the training device.

Default epochs/learning rates are set so that a CPU fit of ML-100K takes seconds; the papers'
settings (lr 1e-3, batch 2048, up to 1000 epochs) are a config away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hybrid.config import from_dict
from hybrid.graph.adjacency import interaction_adjacency, propagate, propagate_rows, spmm
from hybrid.graph.sampled import importance_adjacency, propagate_all, propagate_frontier, transposed
from hybrid.models.base import FitData, Recommender, register
from hybrid.models.bpr import BPRModel
from hybrid.models.embedding import EmbeddingRecommender
from hybrid.models.train import TrainConfig


class MF(BPRModel):
    """Matrix factorisation: ŷ_ui = e_u · e_i (Rendle et al. 2009, BPR).

    Args:
        n_users / n_items: table sizes.
        dim: embedding size d.
    """

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight


class LightGCN(MF):
    """LightGCN (He et al. 2020): e^{(l+1)} = Â e^{(l)}, final = Σ_{l=0..L} e^{(l)} / (L + 1).

    No weights and no nonlinearity in the propagation: the only parameters are the layer-0 tables,
    so a subclass can replace :meth:`layer0` (e.g. text features projected plus an id embedding)
    and keep the rest.

    Args:
        n_users / n_items: table sizes.
        dim: embedding size d.
        layers: L, propagation steps.
        adj: symmetric normalised adjacency [n_users + n_items]² (users first), on the model's
            device; held as a plain attribute, not a parameter or buffer.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int, adj: torch.Tensor) -> None:
        super().__init__(n_users, n_items, dim)
        self.layers = layers
        self.adj = adj

    def propagate(self, users0: torch.Tensor, items0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = propagate(self.adj, torch.cat([users0, items0]), self.layers)
        return out[: self.n_users], out[self.n_users :]

    def batch_embeddings(
        self, users0: torch.Tensor, items0: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's final rows via :func:`~hybrid.graph.adjacency.propagate_rows` (exact; cheaper a step than the full propagation)."""
        rows = torch.cat([users, items + self.n_users])
        out = propagate_rows(self.adj, torch.cat([users0, items0]), self.layers, rows)
        return out[: len(users)], out[len(users) :]


class SampledLightGCN(LightGCN):
    """LightGCN over PinSage importance neighbourhoods (:mod:`hybrid.graph.sampled`): a training
    step propagates only the batch's L-hop frontier in Ã, each node aggregating its T most visited
    neighbours by their normalised visit counts.

    With ``aggregation="learned"`` a layer is PinSage's CONVOLVE instead of the weighted mean:
    e^{(l)}_v = normalise(ReLU(W_l [e^{(l-1)}_v ‖ Σ_w Ã_vw e^{(l-1)}_w] + b_l)), with the final
    embedding still the mean over layers.

    Args:
        adj: Ã [n_users + n_items]², sparse CSR (:func:`hybrid.graph.sampled.importance_adjacency`).
        aggregation: "mean" (LightGCN's, parameter-free) or "learned" (PinSage's).
        Others as :class:`LightGCN`.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int, adj: torch.Tensor,
                 aggregation: Literal["mean", "learned"] = "mean") -> None:
        super().__init__(n_users, n_items, dim, layers, adj)
        self.adj_t = transposed(adj)  # Ã is not symmetric: its backward reads Ãᵀ
        self.convolve = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in range(layers)) if aggregation == "learned" else None

    def _combine(self, level: int, own: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.relu(self.convolve[level - 1](torch.cat([own, agg], dim=1))), dim=1)

    @property
    def combine(self) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None:
        return None if self.convolve is None else self._combine

    def propagate(self, users0: torch.Tensor, items0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = propagate_all(self.adj, self.adj_t, torch.cat([users0, items0]), self.layers, self.combine)
        return out[: self.n_users], out[self.n_users :]

    def batch_embeddings(
        self, users0: torch.Tensor, items0: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.cat([users, items + self.n_users])
        out = propagate_frontier(self.adj, torch.cat([users0, items0]), self.layers, rows, self.adj_t, self.combine)
        return out[: len(users)], out[len(users) :]


class NGCF(BPRModel):
    """NGCF (Wang et al. 2019), layers concatenated.

    One layer, in matrix form with E = e^{(l)} [n, d] and Â the normalised adjacency:

        E^{(l+1)} = LeakyReLU_{0.2}( W1 (Â E + E) + W2 (Â E ⊙ E) )

    i.e. messages W1 e_j + W2 (e_j ⊙ e_i) summed with weights 1/sqrt(|N(u)||N(i)|) plus the
    self-connection W1 e_i; message dropout after each layer. The final embedding concatenates
    e^{(0)} with the L2-normalised outputs of every layer: [n, d (L + 1)] (as the official code).

    Args:
        n_users / n_items: table sizes.
        dim: embedding size d (every layer keeps it).
        layers: L.
        adj: symmetric normalised adjacency, as for :class:`LightGCN`.
        dropout: message dropout rate (paper: 0.1).
    """

    def __init__(
        self, n_users: int, n_items: int, dim: int, layers: int, adj: torch.Tensor, dropout: float
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.adj = adj
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        self.w1 = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.w2 = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        for weight in (self.user_embedding.weight, self.item_embedding.weight):
            nn.init.xavier_uniform_(weight)
        for linear in [*self.w1, *self.w2]:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def propagate(self, users0: torch.Tensor, items0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([users0, items0])
        outputs = [x]
        for w1, w2 in zip(self.w1, self.w2, strict=True):
            side = spmm(self.adj, x)
            x = self.dropout(F.leaky_relu(w1(side + x) + w2(side * x), negative_slope=0.2))
            outputs.append(F.normalize(x, dim=1))
        out = torch.cat(outputs, dim=1)
        return out[: self.n_users], out[self.n_users :]


# Defaults for a fast CPU fit of MovieLens-sized data, chosen per model on the *validation* Recall@20
# of ML-100K's temporal split (no JSON of that sweep is kept, so no figures here): MF lr 0.02
# constant, LightGCN lr 0.05 cosine, NGCF lr 0.02 constant (the slowest per epoch), each against
# other pairs of lr (0.02, 0.05) and schedule (constant, cosine).
# The LightGCN paper's settings are lr=1e-3, batch_size=2048, reg=1e-4, up to 1000 epochs; for the
# official Gowalla split see benchmarks/gowalla_lightgcn.py.
@dataclass
class MFConfig(TrainConfig):
    lr: float = 0.02
    batch_size: int = 8192
    epochs: int = 60
    eval_every: int = 4
    patience: int = 3


@dataclass
class LightGCNConfig(MFConfig):
    lr: float = 0.05
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    layers: int = 3  # propagation steps L
    # full: the normalised adjacency; sampled: a sparser Ã from random walks with restart
    # (hybrid.graph.sampled): `walks` walks of `walk_length` steps from each node rank its
    # neighbours, top_t are kept (see neighbourhood below). With neighbourhood walks they are
    # weighted by visit share ("visits") or by visit share times sqrt(deg v / deg w) ("symmetric":
    # LightGCN's normalisation where the neighbourhood is the direct one). top_t 20 (against 10 and
    # 40) and symmetric (against visits) were chosen, with neighbourhood walks, by valid Recall@20
    # of hybrid-train on ML-100K temporal and Amazon Scientific (no JSON of that sweep is kept).
    propagation: Literal["full", "sampled"] = "full"
    top_t: int = 20
    walks: int = 20
    walk_length: int = 10
    restart_prob: float = 0.5
    weighting: Literal["visits", "symmetric"] = "symmetric"
    # walks: PinSage's top_t most visited nodes of the other side, any odd number of hops away;
    # edges: each node's own edges, cut to the top_t most visited where it has more (rows of at
    # most top_t edges are Â's exactly; weighting does not apply). edges has the higher worst
    # ratio to full LightGCN on validation data of ML-100K, Amazon Scientific and Gowalla
    # (benchmarks/sampled_selection.py; its JSON is rendered in docs/results.md).
    neighbourhood: Literal["walks", "edges"] = "edges"
    # Sampled only: LightGCN's weighted mean, or PinSage's CONVOLVE. The mean is the default: it had
    # the higher valid Recall@20 with the other defaults on ML-100K temporal and Amazon Scientific
    # (no JSON of that comparison is kept).
    aggregation: Literal["mean", "learned"] = "mean"

    def validate(self) -> None:
        super().validate()
        if self.propagation not in ("full", "sampled"):
            raise ValueError(f"propagation must be 'full' or 'sampled', got {self.propagation!r}")
        for name in ("top_t", "walks", "walk_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.restart_prob <= 1:
            raise ValueError(f"restart_prob must be in [0, 1], got {self.restart_prob!r}")


@dataclass
class NGCFConfig(MFConfig):
    layers: int = 3  # propagation steps L
    dropout: float = 0.1  # message dropout


class MFRecommender(EmbeddingRecommender):
    """MF-BPR as a registered model (``mf``)."""

    name = "mf"
    config_class = MFConfig

    def build_module(self, data: FitData) -> BPRModel:
        return MF(data.train.n_users, data.train.n_items, self.config.dim)


class LightGCNRecommender(EmbeddingRecommender):
    """LightGCN as a registered model (``lightgcn``)."""

    name = "lightgcn"
    config_class = LightGCNConfig
    config: LightGCNConfig

    def build_module(self, data: FitData) -> BPRModel:
        config = self.config
        if config.propagation == "sampled":
            adj = importance_adjacency(data.train, config.top_t, config.walks, config.walk_length, config.restart_prob,
                                       data.seed if config.seed is None else config.seed, data.device, config.weighting,
                                       config.neighbourhood)
            return SampledLightGCN(data.train.n_users, data.train.n_items, config.dim, config.layers, adj,
                                   config.aggregation)
        adj = interaction_adjacency(data.train, data.device)
        return LightGCN(data.train.n_users, data.train.n_items, config.dim, config.layers, adj)


class NGCFRecommender(EmbeddingRecommender):
    """NGCF as a registered model (``ngcf``)."""

    name = "ngcf"
    config_class = NGCFConfig
    config: NGCFConfig

    def build_module(self, data: FitData) -> BPRModel:
        if not 0 <= self.config.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.config.dropout}")
        adj = interaction_adjacency(data.train, data.device)
        return NGCF(
            data.train.n_users, data.train.n_items, self.config.dim, self.config.layers, adj, self.config.dropout
        )


@register("mf")
def _mf(params: dict[str, Any]) -> Recommender:
    return MFRecommender(from_dict(MFConfig, params, "mf"))


@register("lightgcn")
def _lightgcn(params: dict[str, Any]) -> Recommender:
    return LightGCNRecommender(from_dict(LightGCNConfig, params, "lightgcn"))


@register("lightgcn_sampled")
def _lightgcn_sampled(params: dict[str, Any]) -> Recommender:
    return LightGCNRecommender(from_dict(LightGCNConfig, {"propagation": "sampled", **params}, "lightgcn_sampled"))


@register("ngcf")
def _ngcf(params: dict[str, Any]) -> Recommender:
    return NGCFRecommender(from_dict(NGCFConfig, params, "ngcf"))
