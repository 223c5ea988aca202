"""The hybrid: LightGCN over text-initialised items, plus a content path blended in by count.

    item layer 0        e⁰_i = W_p x_i + [n_i > 0] · id_i          (x_i: the item's text vector)
    graph path          (u, g) = LightGCN(e⁰)                       (He et al. 2020)
    content path        c_i = MLP(x_i)                              (defined for every item, even unseen)
    final item vector   b_i = (1 − α_i) s c_i + α_i g_i,   α_i = min(n_i / τ, 1)
    score               ŷ_ui = u · b_i

A brand-new item (n_i = 0) is pure content; a popular one is pure graph. For the blend to mean
anything, c must live in the space of g and be scored against the same users, on the same scale.
Training therefore adds to LightGCN's BPR loss a content term over the same triples,

    L_content = −log σ(u · c_i − u · b_j) − log σ(u · b_i − u · c_j) + λ ½ (‖c_i‖² + ‖c_j‖²)

each item seen once through its text alone and once as it will be ranked (blended): content
scores are calibrated against the scores they will compete with in one ranking, as DropoutNet /
Heater / ALDI train a content path against the same users. The users' vectors
are detached in that term by default, so the graph path (and warm quality) is LightGCN's own.

After training, s and τ are chosen on the validation set (:meth:`HybridRecommenderModel._calibrate`):
s by the validation recall that cold items cost when they take top-20 slots
(:mod:`hybrid.models.calibration`), τ by validation Recall@20.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import save_file
from torch import nn
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.graph.adjacency import interaction_adjacency
from hybrid.models.base import FitData, Recommender, register
from hybrid.models.calibration import cold_slot_loss
from hybrid.models.embedding import CONFIG_FILE, WEIGHTS_FILE, EmbeddingRecommender
from hybrid.models.graph_models import LightGCN, LightGCNConfig
from hybrid.models.train import BPRModel, validation_metrics

logger = logging.getLogger(__name__)

TAU_GRID = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
# Content scales priced by the calibration: fine steps, since cold items flood the lists past ~0.9.
SCALE_GRID = tuple(round(0.025 * i, 3) for i in range(1, 41))


def check_positive(name: str, value: float | None) -> None:
    """A ``ValueError`` naming ``name`` unless ``value`` is None or a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def blend_weights(counts: torch.Tensor, tau: float) -> torch.Tensor:
    """α_i = min(n_i / τ, 1): float [n_items] from training counts."""
    return torch.clamp(counts.float() / tau, max=1.0)


@dataclass
class HybridConfig(LightGCNConfig):
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    tau: float | None = None  # blend scale τ; None: chosen on the validation set from TAU_GRID
    # Scale s of the content vectors in the blend, b = α g + (1 − α) s c; None: chosen on the
    # validation set, the largest s whose loss of validation Recall@20 (cold items taking
    # top-20 slots) is at most `warm_tolerance`.
    content_scale: float | None = None
    warm_tolerance: float = 0.02
    train_tau: float = 10.0  # τ of the negatives' blended vectors in the content term
    content_weight: float = 1.0  # weight of the content term in the loss
    detach_users: bool = True  # the content term does not move user vectors (warm quality is LightGCN's)
    content_hidden: int = 256  # hidden width of the content MLP (0: a linear map)
    text_in_graph: bool = True  # item layer 0 = W_p x_i + id_i (else id_i alone: text only in the content path)
    # Zero-history users with profile text are scored with c(text), the content path applied to
    # their text; otherwise (or when False) with the mean warm user.
    use_user_text: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        super().validate()
        for name in ("tau", "content_scale", "train_tau", "content_weight"):
            check_positive(name, getattr(self, name))
        if not 0 <= self.warm_tolerance < 1:
            raise ValueError(f"warm_tolerance must be in [0, 1), got {self.warm_tolerance!r}")
        if self.content_hidden < 0:
            raise ValueError(f"content_hidden must be >= 0, got {self.content_hidden!r}")


class ContentHead(nn.Module):
    """c = MLP(x): text vectors [n, d_text] -> item space [n, d]."""

    def __init__(self, d_text: int, dim: int, hidden: int) -> None:
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(nn.Linear(d_text, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim))
        else:
            self.net = nn.Linear(d_text, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HybridLightGCN(LightGCN):
    """LightGCN whose item layer 0 comes from text, with a content path blended in by count.

    Args:
        features: float32 [n_items, d_text] item text vectors (zeros where an item has no text).
        counts: int64 [n_items] training interactions per item.
        tau: τ of the negatives' blend in the content term.
        content_weight: weight of the content term.
        content_reg: λ of the L2 term on the batch's content vectors.
        detach_users: keep the content term's gradient away from the user vectors.
        content_hidden: hidden width of the content MLP.
        (the rest as :class:`~hybrid.models.graph_models.LightGCN`)
    """

    def __init__(
        self, n_users: int, n_items: int, dim: int, layers: int, adj: torch.Tensor,
        features: torch.Tensor, counts: torch.Tensor, tau: float, content_weight: float, content_reg: float,
        detach_users: bool, content_hidden: int, text_in_graph: bool,
    ) -> None:
        super().__init__(n_users, n_items, dim, layers, adj)
        self.features = features
        self.counts = counts
        self.tau = tau
        self.content_weight = content_weight
        self.content_reg = content_reg
        self.detach_users = detach_users
        self.warm = (counts > 0).float().unsqueeze(1)
        self.text_projection = nn.Linear(features.shape[1], dim, bias=False) if text_in_graph else None
        self.content = ContentHead(features.shape[1], dim, content_hidden)

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        items0 = self.warm * self.item_embedding.weight
        if self.text_projection is not None:
            items0 = items0 + self.text_projection(self.features)
        return self.user_embedding.weight, items0

    def parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Final users [n_users, d], graph items g [n_items, d], content items c [n_items, d]."""
        users, graph = super().propagate(*self.layer0())
        return users, graph, self.content(self.features)

    def auxiliary_loss(
        self, users: torch.Tensor, pos_emb: torch.Tensor, neg_emb: torch.Tensor,
        positives: torch.Tensor, negatives: torch.Tensor,
    ) -> torch.Tensor:
        """Content term over the batch's triples (graph vectors fixed), times ``content_weight``:

            −log σ(u · c_i − u · b_j) − log σ(u · b_i − u · c_j) + λ ½ (‖c_i‖² + ‖c_j‖²)

        Each side of a pair is seen once through its text alone and once as it will be ranked
        (blended), so content scores land on the scale of the graph scores they compete with:
        above the negatives', below the positives'. The L2 term matches the graph's layer-0 one.
        """
        if self.detach_users:
            users = users.detach()
        # The MLP runs once per distinct item of the batch (most of the step's cost on a CPU).
        distinct, inverse = torch.unique(torch.cat([positives, negatives]), return_inverse=True)
        content = self.content(self.features[distinct]).index_select(0, inverse)  # deterministic backward
        c_pos, c_neg = content.split(len(positives))
        a_pos = blend_weights(self.counts[positives], self.tau).unsqueeze(1)
        a_neg = blend_weights(self.counts[negatives], self.tau).unsqueeze(1)
        b_pos = a_pos * pos_emb.detach() + (1 - a_pos) * c_pos
        b_neg = a_neg * neg_emb.detach() + (1 - a_neg) * c_neg

        def score(items: torch.Tensor) -> torch.Tensor:
            return (users * items).sum(1)

        loss = self.recommendation_loss(score(c_pos), score(b_neg)) + self.recommendation_loss(score(b_pos), score(c_neg))
        l2 = 0.5 * content.square().sum() / len(positives)
        return self.content_weight * (loss + self.content_reg * l2)


class _Blended(BPRModel):
    """Fixed (users, items) embeddings for scoring one τ on validation without retraining."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        super().__init__()
        self.users, self.items = users, items

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users, self.items


class HybridRecommenderModel(EmbeddingRecommender):
    """The ``hybrid_lightgcn`` model of ``hybrid-eval``: LightGCN over text-initialised items with a learned content path.

    Attributes (after fit/load), besides those of EmbeddingRecommender:
        graph_items_ / content_items_: float32 [n_items, d] the two item paths.
        item_counts_: int64 [n_items] training interactions per item.
        tau_: the τ in use.
    """

    name = "hybrid_lightgcn"
    config_class = HybridConfig
    config: HybridConfig

    def build_module(self, data: FitData) -> BPRModel:
        if data.item_text is None:
            raise ValueError("hybrid needs item text; this data set has none (use lightgcn)")
        features = torch.as_tensor(encode_texts(data.item_text, self.config.encoder), device=data.device)
        counts = torch.as_tensor(data.train.item_counts(), device=data.device)
        return HybridLightGCN(
            data.train.n_users, data.train.n_items, self.config.dim, self.config.layers,
            interaction_adjacency(data.train, data.device), features, counts,
            self.config.train_tau, self.config.content_weight, self.config.reg, self.config.detach_users,
            self.config.content_hidden, self.config.text_in_graph,
        )

    def fit(self, data: FitData) -> Self:
        super().fit(data)
        module: HybridLightGCN = self.module_  # type: ignore[assignment]
        with torch.no_grad():
            users, graph, content = module.parts()
        self.content_state_ = {k: v.detach() for k, v in module.content.state_dict().items()}
        self.d_text_ = module.features.shape[1]
        self.tau_, self.content_scale_ = self._calibrate(users, graph, content, module.counts, data)
        self._set_parts(users, graph, content, module.counts, data.train.user_counts())
        self.user_text_ = data.user_text if self.config.use_user_text else None
        return self

    def chosen(self) -> dict[str, Any]:
        return {**super().chosen(), "tau": self.tau_, "content_scale": self.content_scale_}

    def _blend(self, graph: torch.Tensor, content: torch.Tensor, counts: torch.Tensor,
               tau: float, scale: float) -> torch.Tensor:
        alpha = blend_weights(counts, tau).unsqueeze(1)
        return alpha * graph + (1 - alpha) * scale * content

    def _set_parts(self, users: torch.Tensor, graph: torch.Tensor, content: torch.Tensor,
                   counts: torch.Tensor, user_counts: np.ndarray) -> None:
        self.graph_items_, self.content_items_, self.item_counts_ = graph, content, counts
        self._set_state(users, self._blend(graph, content, counts, self.tau_, self.content_scale_), user_counts)

    def set_blend(self, content_scale: float | None = None, tau: float | None = None) -> Self:
        """Re-blend the fitted item paths at a new content scale s and/or τ, without refitting.

        A larger s lets new items take more top-K slots from warm ones (the price is printed by
        ``benchmarks/cold_frontier.py``); the calibrated values are ``content_scale_`` and
        ``tau_`` after fit, and the new ones are saved with the model.
        """
        check_positive("content_scale", content_scale)
        check_positive("tau", tau)
        self.content_scale_ = self.content_scale_ if content_scale is None else float(content_scale)
        self.tau_ = self.tau_ if tau is None else float(tau)
        self._set_parts(self.user_embeddings_, self.graph_items_, self.content_items_, self.item_counts_,
                        self.user_counts_)
        return self

    def _calibrate(self, users: torch.Tensor, graph: torch.Tensor, content: torch.Tensor,
                   counts: torch.Tensor, data: FitData) -> tuple[float, float]:
        """(τ, s) from the config, or chosen on the validation set.

        s decides how many top-K slots cold items take from warm ones: the largest s of
        SCALE_GRID whose loss of validation Recall@20
        (:func:`~hybrid.models.calibration.cold_slot_loss`) is at most ``warm_tolerance``. τ decides
        how much content the rarely seen warm items keep: the τ of TAU_GRID with the best
        validation Recall@20 at that s (ties: the smaller τ).
        """
        config = self.config
        if data.valid is None or len(data.valid) == 0:
            return (config.train_tau if config.tau is None else config.tau,
                    1.0 if config.content_scale is None else config.content_scale)
        train, valid = data.train.matrix(), data.valid.matrix()
        scale = config.content_scale
        if scale is None:
            cold = (counts == 0).cpu().numpy()
            losses = cold_slot_loss(users, graph, content, cold, train, valid, SCALE_GRID)
            allowed = [s for s, loss in losses.items() if loss <= config.warm_tolerance]
            scale = max(allowed, default=min(SCALE_GRID))
            logger.info("hybrid: validation recall lost to cold items by content scale %s -> s = %g",
                        {s: round(v, 4) for s, v in losses.items()}, scale)
        if config.tau is not None:
            return config.tau, scale

        def recall(tau: float) -> float:
            items = self._blend(graph, content, counts, tau, scale)
            return validation_metrics(_Blended(users, items), train, valid)["valid_recall@20"]

        scores = {tau: recall(tau) for tau in sorted({*TAU_GRID, config.train_tau})}
        tau = max(scores, key=lambda t: (scores[t], -t))
        logger.info("hybrid: validation Recall@20 by tau %s -> tau = %g", {t: round(v, 4) for t, v in scores.items()}, tau)
        return tau, scale

    # ------------------------------------------------------------------ content path for new things
    def content_vectors(self, texts: list[str]) -> torch.Tensor:
        """c(x) for new texts: float32 [n, d] in the item space (an item with no interactions)."""
        head = ContentHead(self.d_text_, self.graph_items_.shape[1], self.config.content_hidden)
        head.load_state_dict(self.content_state_)
        head.to(self.graph_items_.device).eval()
        features = torch.as_tensor(encode_texts(texts, self.config.encoder), device=self.graph_items_.device)
        with torch.no_grad():
            return head(features)

    def add_items(self, texts: list[str]) -> None:
        """Append items with no interactions: their final vector is their content vector."""
        content = self.content_vectors(texts)
        counts = torch.cat([self.item_counts_, torch.zeros(len(texts), dtype=self.item_counts_.dtype, device=content.device)])
        self._set_parts(
            self.user_embeddings_, torch.cat([self.graph_items_, torch.zeros_like(content)]),
            torch.cat([self.content_items_, content]), counts, self.user_counts_,
        )

    def user_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        vectors = super().user_vectors(users, history)
        if self.user_text_ is None:
            return vectors
        empty = np.flatnonzero((self.user_counts_[users] == 0) & (np.diff(history.indptr) == 0))
        texts = [self.user_text_[users[r]] for r in empty]
        with_text = [r for r, t in zip(empty, texts, strict=True) if t.strip()]
        if with_text:
            rows = torch.as_tensor(with_text, device=vectors.device)
            vectors[rows] = self.content_vectors([self.user_text_[users[r]] for r in with_text])
        return vectors

    # ------------------------------------------------------------------ persistence
    def _write(self, path: Path) -> None:
        """safetensors (users, both item paths, counts, content head) + JSON config and, with
        ``use_user_text``, the users' profile texts; the encoder is named, not copied."""
        meta = {"model": self.name, "config": dataclasses.asdict(self.config), "tau": self.tau_,
                "content_scale": self.content_scale_, "d_text": self.d_text_, "user_text": self.user_text_}
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        tensors = {
            "user_embeddings": self.user_embeddings_, "graph_items": self.graph_items_,
            "content_items": self.content_items_, "item_counts": self.item_counts_,
            "user_counts": torch.as_tensor(self.user_counts_), "fold_in_pool": torch.as_tensor(self.fold_in_pool_),
            **{f"content.{k}": v for k, v in self.content_state_.items()},
        }
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path / WEIGHTS_FILE))

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        model, meta, tensors = cls._read_saved(path, device)
        model.tau_, model.content_scale_, model.d_text_ = meta["tau"], meta["content_scale"], meta["d_text"]
        model.content_state_ = {k.removeprefix("content."): v for k, v in tensors.items() if k.startswith("content.")}
        model.user_text_ = meta.get("user_text")
        model._set_parts(tensors["user_embeddings"], tensors["graph_items"], tensors["content_items"],
                         tensors["item_counts"], tensors["user_counts"].cpu().numpy())
        return model


@register("hybrid_lightgcn")
def _hybrid_lightgcn(params: dict[str, Any]) -> Recommender:
    return HybridRecommenderModel(from_dict(HybridConfig, params, "hybrid"))
