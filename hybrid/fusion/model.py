"""The hybrid: a warm graph scorer and text signals fused by a count-aware gate learned on pseudo-new items.

    score(u, i) = b[β(n_i)] + Σ_f w_f[β(n_i)] · z_f(u, i)

z_f are the standardised signals of :mod:`hybrid.fusion.signals` (the warm scorer's graph score,
the user's text profile, text item-kNN, the graph scores of the item's text neighbours, and
popularity); β(n_i) is the item's training-count bucket (0, 1–4, 5–19, 20–99, 100+), so a new
item is ranked by its text alone, a sparse one by text and graph, a popular one mostly by graph,
and the gate learns, per bucket, how much each signal counts and where the bucket stands in the
one list (ALDI and GAR put content scores on the warm scale; here the scale is fitted directly).

Why this shape: measured here, a text-to-embedding map calibrated only on what new items *cost*
warm recall hid new items; content kNN (the profile signal alone) beat that hybrid on warm and new
items at once on held-out data, and a training-free graph filter (GF-CF) beat its LightGCN half on
warm items. The fusion keeps each of those at its best and learns how to merge them.

Fitting (every choice on training data only, see :mod:`hybrid.fusion.rehearsal`):
1. pseudo-new items and warm positives are carved out of the training data;
2. the warm scorer is fitted on what is left, the signals computed for a seeded sample of
   validation users over a candidate set (each signal's top ``candidates``, random items and the
   positives), and the gate fitted by a sampled-softmax loss (convex; L-BFGS), each positive
   against the user's negatives: the one-list objective, ``new_weight`` weighting new items' positives;
3. with ``refit`` (default) the warm scorer is fitted again on all training interactions, so
   recommendations use everyone's latest item.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.interactions import Interactions
from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.evaluation.metrics import ranking_metrics, restrict_columns
from hybrid.fusion.candidates import (
    column_scores,
    hybrid_item_factors,
    hybrid_user_factors,
    reference_items,
)
from hybrid.fusion.gate import (
    BUCKET_EDGES,
    Gate,
    count_buckets,
    fit_gate,
    fuse,
    stratified_candidates,
)
from hybrid.fusion.new_users import (
    NEW_USER_FEATURES,
    NO_SIDE,
    USER_BUCKETS,
    NewUserPath,
    fit_new_user_path,
    refit_side,
)
from hybrid.fusion.rehearsal import ColdValidation, cold_validation, merged
from hybrid.fusion.signals import FEATURES, FeatureBuilder, text_neighbours
from hybrid.fusion.user_side import SideRegression
from hybrid.models.base import FitData, Recommender, make_model, register
from hybrid.persistence import atomic_folder, check_shape, verify_folder, write_manifest
from hybrid.profiling import StageProfile

logger = logging.getLogger(__name__)

AUTO_WARM = ("gf_cf", "bspm", "ease")
# "auto" tries EASE only up to this many items: its dense inverse costs n³ flops and n² floats
# (5,000 items: 1.25e11 flops, a few seconds on 2 cores, and 100 MB; 20,000: 64x the time and
# 1.6 GB), while GF-CF and BSPM grow with the interactions.
EASE_MAX_ITEMS = 5_000
SPARSE_GRID = (1.0, 2.0, 4.0, 8.0)
SELECTION_SHARE = 0.25  # of the rehearsal users: held out of the gate's fit, sparse_weight chosen on them
SIGNAL_CACHE_FLOATS = 2**28  # validation signals kept in memory up to 1 GiB
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "fusion.safetensors"
WARM_DIR = "warm"


@dataclass
class FusionConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # The graph half: any registered graph model (gf_cf, bspm, ease, lightgcn, mf), or "auto": the
    # training-free filter (gf_cf, bspm, ease) that ranks warm items best on the rehearsal.
    warm_model: str = "auto"
    warm_params: dict[str, Any] = field(default_factory=dict)
    # The filters "auto" chooses among (EASE only up to EASE_MAX_ITEMS items); two-stage retrieval
    # needs a graph half with item vectors to index: gf_cf and bspm have them, EASE has not.
    auto_warm: tuple[str, ...] = AUTO_WARM
    neighbours: int = 50  # M: text neighbours per item
    # Validation rehearsal of the cold start (hybrid.fusion.rehearsal): by time, the last share of
    # the interactions; at random, the share of warm items made pseudo-new.
    valid_new_share: float = 0.2
    # auto = by time when the training data has timestamps, else at random (the training data
    # alone decides: nothing says how the evaluation's new items arise).
    valid_new_by: Literal["auto", "time", "random"] = "auto"
    new_weight: float = 1.0  # weight of new items' validation positives (1: the one-list objective)
    # Weight of validation positives on items with 1–19 interactions; None: the smallest of
    # SPARSE_GRID that serves them on validation as well as the graph or the text profile alone.
    sparse_weight: float | None = None
    max_valid_users: int = 5000  # seeded sample of validation users the gate is fitted on
    candidates: int = 100  # per signal, the top items kept as the gate's negatives
    random_negatives: int = 500  # uniform draws standing for the rest of the catalogue
    max_positives: int = 50  # per validation user (seeded sample beyond)
    # L-BFGS iterations of the gates (at most), where their rehearsal recall stops moving:
    # benchmarks/gate_steps.py (benchmarks/results/gate_steps.json).
    steps: int = 30
    reg: float = 1e-3  # L2 on the gate's weights
    bucket_reg: float = 0.01  # L2 on each warm bucket's offset from the weights all warm buckets share
    refit: bool = True  # refit the warm scorer on all training interactions after the gate is fitted
    use_user_text: bool = True  # zero-history users with profile text: their text is their profile
    # New users (never trained on, at most 4 known items) get gates of their own with the user-side
    # content path (hybrid.fusion.new_users), fitted on users removed from the rehearsal graph.
    new_users: bool = True
    batch_size: int = 512  # validation users scored at once

    def __post_init__(self) -> None:
        self.validate()  # where the config is built: hybrid-eval refuses a bad value before reading data

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        if not 0 < self.valid_new_share < 1:
            raise ValueError(f"valid_new_share must be in (0, 1), got {self.valid_new_share!r}")
        for name in ("new_weight", "sparse_weight"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        # random_negatives >= 1: the draws stand for the rest of the catalogue (0 would leave the
        # softmax without it, and once cleared every positive through a [-0:] slice).
        for name in ("neighbours", "max_valid_users", "candidates", "max_positives", "steps", "batch_size",
                     "random_negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("reg", "bucket_reg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.auto_warm or set(self.auto_warm) - set(AUTO_WARM):
            raise ValueError(f"auto_warm must be a non-empty subset of {list(AUTO_WARM)}, got {list(self.auto_warm)!r}")
        if self.warm_model in ("hybrid", "hybrid_lightgcn", "content", "llm", "hybrid+llm"):
            raise ValueError(f"warm_model must be a graph model (gf_cf, bspm, ease, lightgcn, mf), got {self.warm_model!r}")


class FusionHybrid(Recommender):
    """The ``hybrid`` model (see the module docstring).

    Attributes (after fit/load):
        warm_: the fitted warm scorer; text_: float32 [n_items, d] normalised text vectors;
        neighbours_: CSR text neighbours; counts_: int64 [n_items] graph counts the gate is
        applied with; gate_weight_ float32 [F, B] / gate_bias_ [B]: the fitted :class:`Gate`;
        validation_: what the gate was fitted on.
    """

    name = "hybrid"

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()

    # ------------------------------------------------------------------ fit
    def fit(self, data: FitData) -> Self:
        config = self.config
        config.validate()
        if data.item_text is None:
            raise ValueError("hybrid needs item text; this data set has none (use gf_cf or lightgcn)")
        start = time.perf_counter()
        self.device_ = torch.device(data.device)
        profile = self.profile_ = StageProfile(self.device_)
        with profile.stage("encode"):
            text = torch.as_tensor(encode_texts(data.item_text, config.encoder), device=self.device_)
            self.text_ = torch.nn.functional.normalize(text, dim=1)
        with profile.stage("text kNN"):
            self.neighbours_ = text_neighbours(self.text_, config.neighbours)
        by = config.valid_new_by
        if by == "auto":  # from the training data alone: a deployment never says how its new items arise
            by = "time" if data.train.has_time else "random"
        with profile.stage("rehearsal split"):
            split = cold_validation(data.train, data.valid, config.valid_new_share, by, data.seed)
        self.user_text_ = data.user_text if config.use_user_text else None
        self.warm_name_, warm, warm_recall = self._choose_warm(split, data)
        with profile.stage("gate"):
            gate, self.validation_ = self._fit_gate(warm, split, data)
        with profile.stage("encode user text"):
            user_vectors = self._side_vectors(data.user_text)
        with profile.stage("new-user path"):
            if config.new_users:
                self.new_users_ = fit_new_user_path(self, split, data, user_vectors)
            else:
                self.new_users_ = NewUserPath(None, None, {}, data.train.user_counts(), {"skipped": "new_users: false"})
        with torch.no_grad():
            self.gate_weight_, self.gate_bias_ = gate.weight.detach().clone(), gate.bias.detach().clone()
        self.validation_["rehearsal"] = split.by
        self.validation_["warm_model"] = self.warm_name_
        self.validation_["warm_only valid_recall@20 by warm model"] = warm_recall
        with profile.stage("refit"):
            if config.refit:
                self.warm_ = make_model(self.warm_name_, self._warm_params(self.warm_name_)).fit(data)
                counts = data.train.item_counts()
                if data.valid is not None:
                    counts = counts + data.valid.item_counts()
            else:
                self.warm_, counts = warm, split.fit.item_counts()
        with profile.stage("side regression"):
            rows = merged(data.train, data.valid).matrix()
            refit_side(self.new_users_, (rows > 0).astype(np.float32).tocsr(), data.seed)
        with profile.stage("index"):
            self._set_counts(counts)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def chosen(self) -> dict[str, Any]:
        """The gate (weights per count bucket), the rehearsal it was fitted on, the new-user gates and
        the graph half's choices."""
        profile = getattr(self, "profile_", None)  # None on a loaded model: it was not fitted here
        return {**self.validation_, "new users": self.new_users_.validation, "warm": self.warm_.chosen(),
                **({"profile": profile.record()} if profile is not None else {})}

    def _side_vectors(self, user_text: list[str] | None) -> torch.Tensor | None:
        """float32 [n_users, d] encoded side information (zero rows where a user has none), or None."""
        if user_text is None or not any(t.strip() for t in user_text):
            return None
        present = [i for i, t in enumerate(user_text) if t.strip()]
        vectors = torch.zeros(len(user_text), self.text_.shape[1], device=self.device_)
        vectors[torch.as_tensor(present, device=self.device_)] = self.text_vectors([user_text[i] for i in present])
        return vectors

    def _warm_params(self, name: str) -> dict[str, Any]:
        return self.config.warm_params if name == self.config.warm_model else {}

    def _choose_warm(self, split: ColdValidation, data: FitData) -> tuple[str, Recommender, dict[str, float]]:
        """The graph half: ``warm_model``, or with "auto" the one of AUTO_WARM (EASE where the
        catalogue allows its dense inverse) that ranks the rehearsal's warm positives best among
        warm items; each fitted on the rehearsal graph."""
        names = [self.config.warm_model] if self.config.warm_model != "auto" else [
            n for n in self.config.auto_warm if n != "ease" or data.train.n_items <= EASE_MAX_ITEMS]
        fit_data = dataclasses.replace(data, train=split.fit, valid=None)
        if len(names) == 1:
            with self.profile_.stage(f"graph half: {names[0]}"):
                return names[0], make_model(names[0], self._warm_params(names[0])).fit(fit_data), {}
        history = split.fit.matrix()
        warm_items = (split.fit.item_counts() > 0) & ~split.pseudo_new
        positives = restrict_columns(split.positives, warm_items)
        users = self._validation_users(positives, history, np.random.default_rng(data.seed))
        excluded = torch.as_tensor(~warm_items, device=self.device_)
        models, recall = {}, {}
        for name in names:
            with self.profile_.stage(f"graph half: {name}"):
                models[name] = model = make_model(name, {}).fit(fit_data)
                tops = []
                with torch.no_grad():
                    for start in range(0, len(users), self.config.batch_size):
                        batch = users[start:start + self.config.batch_size]
                        scores = model.score(batch, history[batch]).masked_fill(excluded, -torch.inf)
                        known = torch.as_tensor((history[batch] > 0).toarray(), device=self.device_)
                        top = torch.topk(scores.masked_fill(known, -torch.inf), min(20, scores.shape[1]), dim=1)
                        tops.append(top.indices.cpu().numpy())
                top = np.concatenate(tops)
                recall[name] = round(ranking_metrics(top, positives[users], [top.shape[1]])[f"recall@{top.shape[1]}"], 4)
        best = max(names, key=lambda n: recall[n])
        logger.info("hybrid: warm-only validation Recall@20 by graph half %s -> %s", recall, best)
        return best, models[best], recall

    def _validation_users(self, positives: sp.csr_matrix, history: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
        """Users with history and a validation positive, a seeded sample of at most ``max_valid_users``."""
        users = np.flatnonzero((np.diff(positives.indptr) > 0) & (np.diff(history.indptr) > 0))
        if len(users) > self.config.max_valid_users:
            users = np.sort(rng.choice(users, self.config.max_valid_users, replace=False))
        return users

    def _set_counts(self, counts: np.ndarray) -> None:
        self.counts_ = np.asarray(counts, dtype=np.int64)
        self.reference_ = reference_items(len(self.counts_), seed=0)
        self.builder_ = FeatureBuilder(self.text_, self.neighbours_, self.counts_, self.device_)
        self.buckets_ = torch.as_tensor(count_buckets(self.counts_), device=self.device_)

    def _fit_gate(self, warm: Recommender, split: ColdValidation, data: FitData) -> tuple[Gate, dict[str, Any]]:
        """The gate fitted on the pseudo-new validation split (see the module docstring)."""
        config = self.config
        builder = FeatureBuilder(self.text_, self.neighbours_, split.fit.item_counts(), self.device_)
        buckets = torch.as_tensor(count_buckets(split.fit.item_counts()), device=self.device_)
        history = split.fit.matrix()
        rng = np.random.default_rng(data.seed)
        users = self._validation_users(split.positives, history, rng)
        if len(users) < 2:
            raise ValueError("hybrid: fewer than 2 users have both training history and a validation item; too little data")
        # Honest selection: the gate is fitted on one part of the rehearsal users and sparse_weight
        # chosen (and every validation figure measured) on the others.
        held = np.zeros(len(users), bool)
        held[rng.choice(len(users), max(1, round(SELECTION_SHARE * len(users))), replace=False)] = True
        users, select = users[~held], users[held]
        new_items = torch.as_tensor(split.pseudo_new, device=self.device_)
        batches = ((signals, known, split.positives[batch])
                   for batch, signals, known in self._validation_batches(warm, builder, buckets, history, users))
        feats, labels, is_new, bucket_ids, log_w = self._gate_examples(batches, new_items, buckets, rng)
        self._signal_cache = None  # the selection users' signals are cached next
        is_sparse = (bucket_ids == 1) | (bucket_ids == 2)

        def fit(sparse_weight: float, init: Gate | None) -> tuple[Gate, float]:
            new_weight = config.new_weight * split.new_weight  # the data's own share for new items
            weights = torch.where(is_new, new_weight, torch.where(is_sparse, sparse_weight, 1.0))
            return fit_gate(feats, labels, weights, bucket_ids, log_w, config.reg, config.bucket_reg, config.steps,
                            init=init)

        # sparse_weight None: the smallest weight of SPARSE_GRID whose fused list serves items with
        # 1–19 interactions at least as well as the graph and the text profile alone, on validation
        # (no weight does: the one-list objective, weight 1, and a log line).
        grid = SPARSE_GRID if config.sparse_weight is None else (config.sparse_weight,)
        tried: dict[float, dict[str, float]] = {}
        fitted: dict[float, tuple[Gate, float]] = {}
        choice, gate = None, None
        for weight in grid:  # each gate starts from the previous one (convex: the same optimum, fewer steps)
            gate, loss = fitted[weight] = fit(weight, gate)
            recall = self._validation_recall(gate, warm, builder, buckets, history, select, split.positives)
            tried[weight] = recall
            if config.sparse_weight is not None or recall["hybrid 1-19"] >= max(recall["graph 1-19"], recall["profile 1-19"]):
                choice = weight
                break
        if choice is None:
            logger.info("hybrid: no sparse_weight of %s serves items with 1-19 interactions as well as the graph or "
                        "the text profile on validation; keeping the one-list objective (1)", list(grid))
            choice = 1.0
            gate, loss = fitted[choice] if choice in fitted else fit(choice, None)
        info = {
            "users": len(users), "selection users": len(select), "pseudo_new_items": int(split.pseudo_new.sum()),
            "loss": round(loss, 4),
            "sparse_weight": choice, "new_weight": round(config.new_weight * split.new_weight, 6),
            "valid_recall@20": tried.get(choice) or tried[1.0],
            "valid_recall@20 by sparse_weight": {str(w): r["hybrid"] for w, r in tried.items()},
            "valid_recall@20 on 1-19 by sparse_weight": {str(w): r["hybrid 1-19"] for w, r in tried.items()},
            "weights": {f: [round(v, 4) for v in row] for f, row in zip(FEATURES, gate.weight.tolist(), strict=True)},
            "bias": [round(v, 4) for v in gate.bias.tolist()],
        }
        logger.info("hybrid: gate fitted on %d validation users: %s", len(users), info)
        self._signal_cache = None
        return gate, info

    def _gate_examples(self, batches: Iterator[tuple[list[torch.Tensor], torch.Tensor, sp.csr_matrix]],
                       new_items: torch.Tensor, buckets: torch.Tensor, rng: np.random.Generator,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gate's training tensors from (signals, known items, positives) per user batch: each
        user's stratified candidates (:func:`~hybrid.fusion.gate.stratified_candidates`), their
        signals [U, m, F], positive labels (a seeded sample of at most ``max_positives``), whether
        each is new, its count bucket and its log-weight as a negative."""
        config = self.config
        columns: dict[str, list[torch.Tensor]] = {"feats": [], "labels": [], "new": [], "buckets": [], "log_w": []}
        with torch.no_grad():
            for signals, known, positives in batches:
                cand, log_w = stratified_candidates(signals, known, positives, rng, config.candidates,
                                                    config.random_negatives)
                safe = cand.clamp_min(0)
                positive = torch.as_tensor(positives.toarray() > 0, device=self.device_).gather(1, safe)
                positive &= cand >= 0
                positive[:, cand.shape[1] - config.random_negatives:] = False  # a random draw is never a positive (excluded)
                if positive.sum(1).max() > config.max_positives:  # keep a seeded sample of each user's positives
                    keys = torch.as_tensor(rng.random(positive.shape), device=self.device_).masked_fill(~positive, 2.0)
                    rank = keys.argsort(1).argsort(1)
                    positive &= rank < config.max_positives
                columns["feats"].append(torch.stack([s.gather(1, safe) for s in signals], dim=-1))
                columns["labels"].append(positive)
                columns["new"].append(new_items[safe])
                columns["buckets"].append(buckets[safe])
                columns["log_w"].append(log_w.masked_fill(positive, -torch.inf))  # negatives only
        width = max(t.shape[1] for t in columns["feats"])

        def stacked(name: str, fill: Any) -> torch.Tensor:
            parts = [torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1]) if t.dim() == 3 else (0, width - t.shape[1]),
                                             value=fill) for t in columns[name]]
            return torch.cat(parts)

        return (stacked("feats", 0.0), stacked("labels", False), stacked("new", False), stacked("buckets", 0),
                stacked("log_w", -torch.inf))

    def _validation_batches(self, warm: Recommender, builder: FeatureBuilder, buckets: torch.Tensor,
                            history: sp.csr_matrix, users: np.ndarray) -> Iterator[tuple[np.ndarray, list[torch.Tensor], torch.Tensor]]:
        """(user batch, its signals, its known items as bool [b, n_items]) over the validation users,
        kept in memory after the first pass when they fit in SIGNAL_CACHE_FLOATS (the gate is
        fitted and scored on them several times)."""
        cache = getattr(self, "_signal_cache", None)
        if cache:
            yield from cache
            return
        keep = len(users) * history.shape[1] * len(FEATURES) <= SIGNAL_CACHE_FLOATS
        kept = []
        for start in range(0, len(users), self.config.batch_size):
            batch = users[start:start + self.config.batch_size]
            rows = history[batch]
            graph = warm.score(batch, rows)
            graph[:, buckets == 0] = 0
            item = (batch, builder.signals(graph, rows), torch.as_tensor((rows > 0).toarray(), device=self.device_))
            if keep:
                kept.append(item)
            yield item
        if keep:
            self._signal_cache = kept

    def _validation_recall(self, gate: Gate, warm: Recommender, builder: FeatureBuilder, buckets: torch.Tensor,
                           history: sp.csr_matrix, users: np.ndarray, positives: sp.csr_matrix) -> dict[str, float]:
        """Full-ranking validation Recall@20 of the fused score and of each signal alone: what the
        gate gains over its best input, on the rehearsal, for the record."""
        names = ("hybrid", "graph", "profile", "text_knn", "text_graph", "hybrid warm_only", "graph warm_only")
        sparse_items = ((buckets == 1) | (buckets == 2)).cpu().numpy()
        tops: dict[str, list[np.ndarray]] = {name: [] for name in names}
        new = buckets == 0
        with torch.no_grad():
            for _, signals, known in self._validation_batches(warm, builder, buckets, history, users):
                fused = fuse(signals, gate.weight, gate.bias, buckets)
                ranked = (("hybrid", fused), *zip(names[1:5], signals, strict=False),
                          ("hybrid warm_only", fused.masked_fill(new, -torch.inf)),
                          ("graph warm_only", signals[0].masked_fill(new, -torch.inf)))
                for name, scores in ranked:
                    top = torch.topk(scores.masked_fill(known, -torch.inf), min(20, scores.shape[1]), dim=1).indices
                    tops[name].append(top.cpu().numpy())
        relevant = {"": positives[users], " warm_only": positives[users][:, ~new.cpu().numpy()]}
        warm_index = np.flatnonzero(~new.cpu().numpy())
        out = {}
        for name, t in tops.items():
            top = np.concatenate(t)
            if name.endswith("warm_only"):  # the warm-only metric over warm columns only
                position = np.full(len(new), -1)
                position[warm_index] = np.arange(len(warm_index))
                top, rel = position[top], relevant[" warm_only"]
            else:
                rel = relevant[""]
            k = top.shape[1]  # 20, or fewer on a tiny catalogue
            out[name] = round(ranking_metrics(top, rel, [k])[f"recall@{k}"], 4)
            if name in ("hybrid", "graph", "profile"):  # the one list scored on items with 1–19 interactions
                sparse_rel = restrict_columns(relevant[""], sparse_items)
                out[f"{name} 1-19"] = round(ranking_metrics(top, sparse_rel, [k])[f"recall@{k}"], 4)
        return out

    # ------------------------------------------------------------------ score
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.score_users(users, history)

    def score_users(self, users: np.ndarray, history: sp.csr_matrix, side: torch.Tensor | None = None,
                    profiles: torch.Tensor | None = None) -> torch.Tensor:
        """``score`` with a new user's side vectors [b, d] and text profiles [b, d] given directly
        (the facade's users with no index); None: from the fitted users' side information."""
        users = np.asarray(users)
        n_warm = self.warm_items_
        with torch.no_grad():
            graph = self._graph(users, history[:, :n_warm])
            if graph.shape[1] < history.shape[1]:  # items added after fit: no graph score
                graph = torch.nn.functional.pad(graph, (0, history.shape[1] - graph.shape[1]))
            graph[:, self.buckets_ == 0] = 0
            if profiles is None:
                profiles = self._text_profiles(users, history, encoded=self.new_users_.user_vectors)
            signals = self.builder_.signals(graph, history, profiles)
            fused = fuse(signals, self.gate_weight_, self.gate_bias_, self.buckets_)
            rows = self.new_users_.rows(users, history)
            if len(rows):
                picked = torch.as_tensor(rows, device=self.device_)
                features = self.new_users_.features(users[rows], None if side is None else side[picked], self.device_)
                side_signal = self.new_users_.side_signal(features, len(rows), history.shape[1], self.device_)
                part = fused[picked]
                has_side = np.zeros(len(rows), bool) if features is None else (features != 0).any(1).cpu().numpy()
                self.new_users_.fuse_rows([sig[picked] for sig in signals], side_signal, np.diff(history.indptr)[rows],
                                          has_side, self.buckets_, part)
                fused[picked] = part
            return fused

    def score_candidates(self, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray) -> torch.Tensor:
        """The fused score of each row's candidates, computed on those items (and a fixed reference
        sample that stands in for the catalogue's standardisation): :mod:`hybrid.fusion.candidates`."""
        candidates = np.asarray(candidates, dtype=np.int64)
        cols = np.unique(candidates)
        scores = column_scores(self, users, history, cols)
        return scores.gather(1, torch.as_tensor(np.searchsorted(cols, candidates), device=scores.device))

    def item_factors(self) -> torch.Tensor:
        return hybrid_item_factors(self)

    def user_factors(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return hybrid_user_factors(self, users, history)

    def _graph(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """The warm scorer's scores; a user index < 0 (a new user of the facade) is folded in from ``history``."""
        if (np.asarray(users) >= 0).all():
            return self.warm_.score(users, history)
        fold_in = getattr(self.warm_, "fold_in", None)
        if fold_in is not None:
            return fold_in(history) @ self.warm_.item_embeddings_.T
        return self.warm_.score(np.zeros(len(users), np.int64), history)

    @property
    def warm_items_(self) -> int:
        return self.text_.shape[0] - self.added_ if hasattr(self, "added_") else self.text_.shape[0]

    @property
    def user_text_(self) -> list[str] | None:
        """The fitted users' profile text (``use_user_text``), or None; None after :meth:`load`
        too: a saved model holds the encoded vectors (:meth:`user_profiles`), not the text."""
        return self.__dict__.get("_user_text")

    @user_text_.setter
    def user_text_(self, value: list[str] | None) -> None:
        self.__dict__["_user_text"], self.__dict__["_user_profiles"] = value, None

    def user_profiles(self) -> torch.Tensor | None:
        """float32 [n_users, d] the fitted users' profile text encoded (zero rows: none), or None
        without it; encoded once (the new-user path's side vectors, when it has the same)."""
        if self.__dict__.get("_user_profiles") is None and self.user_text_ is not None:
            path = getattr(self, "new_users_", None)
            vectors = path.user_vectors if path is not None else None
            if vectors is None or vectors.shape[0] != len(self.user_text_):
                vectors = self._side_vectors(self.user_text_)
            self.__dict__["_user_profiles"] = vectors
        return self.__dict__.get("_user_profiles")

    def _text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: FeatureBuilder | None = None,
                       encoded: torch.Tensor | None = None) -> torch.Tensor | None:
        """Profile vectors where a zero-history user has profile text; None when no row needs one
        (``builder``: the one whose text vectors average the rows' items, default the fitted one;
        ``encoded``: the users' profile texts already encoded [n_users, d], default :meth:`user_profiles`)."""
        if self.user_text_ is None and self.__dict__.get("_user_profiles") is None:
            return None  # no use_user_text, or no profile text
        vectors = encoded if encoded is not None else self.user_profiles()
        if vectors is None:
            return None
        present = (vectors != 0).any(1).cpu().numpy()
        empty = [r for r in np.flatnonzero(np.diff(history.indptr) == 0) if 0 <= users[r] < len(present) and present[users[r]]]
        if not empty:
            return None
        profiles = (builder or self.builder_).profile_vectors(history)
        rows = torch.as_tensor(empty, device=self.device_)
        profiles[rows] = vectors[torch.as_tensor(users[empty], device=self.device_)]
        return profiles

    def text_vectors(self, texts: list[str]) -> torch.Tensor:
        """float32 [n, d] normalised text vectors through the fitted encoder."""
        vectors = torch.as_tensor(encode_texts(texts, self.config.encoder), device=self.device_)
        return torch.nn.functional.normalize(vectors, dim=1)

    def score_text(self, text: str, n_items: int) -> torch.Tensor:
        """float32 [1, n_items] scores for a zero-history user described by ``text``."""
        history = sp.csr_matrix((1, n_items), dtype=np.float32)
        with torch.no_grad():
            graph = torch.zeros(1, n_items, device=self.device_)
            signals = self.builder_.signals(graph, history, self.text_vectors([text]))
            return fuse(signals, self.gate_weight_, self.gate_bias_, self.buckets_)

    def refit_graph(self, history: sp.csr_matrix) -> None:
        """Refit the graph half on a new binary interaction matrix [n_users, n_items] (every item
        the model knows, added ones included), keeping the gate; the count buckets follow."""
        if history.shape[1] != self.text_.shape[0]:
            raise ValueError(f"history has {history.shape[1]} items, the model {self.text_.shape[0]}")
        coo = history.tocoo()
        users, items = pd.RangeIndex(history.shape[0]), pd.RangeIndex(history.shape[1])
        train = Interactions(pd.Index(users), pd.Index(items), coo.row.astype(np.int64), coo.col.astype(np.int64),
                             np.ones(coo.nnz, np.float32), None)
        self.warm_ = make_model(self.warm_name_, self._warm_params(self.warm_name_)).fit(
            FitData(train=train, device=self.device_))
        self.added_ = 0
        # A path of its own (a copy of this model may share the old one), its side vectors padded
        # with zero rows for new users (who bring no side text) and its side regression refitted on
        # every item, so the saved arrays agree with each other.
        path = self.new_users_ = copy.copy(self.new_users_)
        if path.user_vectors is not None and path.user_vectors.shape[0] < history.shape[0]:
            path.user_vectors = torch.nn.functional.pad(path.user_vectors, (0, 0, 0, history.shape[0] - path.user_vectors.shape[0]))
        refit_side(path, history.tocsr(), seed=0)
        path.user_counts = train.user_counts()
        self._set_counts(train.item_counts())

    def add_items(self, texts: list[str]) -> None:
        """Append items with no interactions: ranked by their text (and their text neighbours' graph scores)."""
        new = self.text_vectors(texts)
        self.text_ = torch.cat([self.text_, new])
        self.neighbours_ = text_neighbours(self.text_, self.config.neighbours)
        self.added_ = getattr(self, "added_", 0) + len(texts)
        self._set_counts(np.concatenate([self.counts_, np.zeros(len(texts), np.int64)]))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the model atomically (:mod:`hybrid.persistence`): a crash mid-save leaves the previous one."""
        with atomic_folder(path) as folder:
            self.write(folder)
            write_manifest(folder, self.name)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """Read a folder written by :meth:`save`, after checking every file (a ``ValueError`` names the bad one)."""
        verify_folder(path, cls.name)
        return cls.read(Path(path), device)

    def write(self, folder: Path) -> None:
        """JSON config + safetensors (text vectors, neighbours, counts, gate) and the warm scorer in ``warm/``."""
        self.warm_.save(folder / WARM_DIR)
        profiles = self.user_profiles()
        shared = profiles is not None and profiles is self.new_users_.user_vectors
        meta = {"model": self.name, "config": dataclasses.asdict(self.config), "warm_model": self.warm_name_,
                "validation": self.validation_,
                "added": getattr(self, "added_", 0),
                # Users' side text stays out of the folder: their vectors are what scoring needs.
                "profiles": None if profiles is None else "new_users.vectors" if shared else "user_profiles",
                "new_users": self.new_users_.validation,
                "side": None if self.new_users_.side is None else [self.new_users_.side.ridge_, self.new_users_.side.power_]}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        n = self.neighbours_
        tensors = {
            "text": self.text_, "counts": torch.as_tensor(self.counts_),
            "neighbours.indptr": torch.as_tensor(n.indptr.astype(np.int64)),
            "neighbours.indices": torch.as_tensor(n.indices.astype(np.int64)),
            "neighbours.data": torch.as_tensor(n.data), "gate.weight": self.gate_weight_, "gate.bias": self.gate_bias_,
            "user_counts": torch.as_tensor(self.new_users_.user_counts),
        }
        path = self.new_users_
        for name, (weight, bias) in path.gates.items():
            tensors[f"new_users.{name}.weight"], tensors[f"new_users.{name}.bias"] = weight, bias
        if path.user_vectors is not None:
            tensors["new_users.vectors"] = path.user_vectors
        if path.side is not None:
            tensors["new_users.side"] = path.side.weights_
        if profiles is not None and not shared:
            tensors["user_profiles"] = profiles
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(folder / WEIGHTS_FILE))

    @classmethod
    def read(cls, folder: Path, device: torch.device | str = "cpu") -> Self:
        """The model in ``folder`` (checked by the caller), its arrays' shapes checked against each other."""
        for name in (CONFIG_FILE, WEIGHTS_FILE, WARM_DIR):
            if not (folder / name).exists():
                raise ValueError(f"{folder / name} is missing: {folder} is not a complete saved hybrid")
        meta = json.loads((folder / CONFIG_FILE).read_text())
        model = cls(from_dict(FusionConfig, meta["config"], f"{folder / CONFIG_FILE}: config"))
        model.device_ = torch.device(device)
        tensors = load_file(str(folder / WEIGHTS_FILE), device=str(model.device_))
        missing = sorted({"text", "counts", "neighbours.indptr", "neighbours.indices", "neighbours.data",
                          "gate.weight", "gate.bias"} - set(tensors))
        if missing:
            raise ValueError(f"{folder / WEIGHTS_FILE} lacks the arrays {missing}")
        n = tensors["text"].shape[0]
        where = folder / WEIGHTS_FILE
        check_shape("counts", tensors["counts"].shape, (n,), where)
        check_shape("neighbours.indptr", tensors["neighbours.indptr"].shape, (n + 1,), where)
        check_shape("gate.weight", tensors["gate.weight"].shape, (len(FEATURES), len(BUCKET_EDGES) + 1), where)
        check_shape("gate.bias", tensors["gate.bias"].shape, (len(BUCKET_EDGES) + 1,), where)
        indices = tensors["neighbours.indices"].cpu().numpy()
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"{where}: neighbours.indices point outside the {n} items")
        model.warm_name_ = meta["warm_model"]
        warm_class = type(make_model(model.warm_name_, model._warm_params(model.warm_name_)))
        model.warm_ = warm_class.load(folder / WARM_DIR, model.device_)
        model.text_ = tensors["text"]
        model.neighbours_ = sp.csr_matrix(
            (tensors["neighbours.data"].cpu().numpy(), indices, tensors["neighbours.indptr"].cpu().numpy()), shape=(n, n))
        model.gate_weight_, model.gate_bias_ = tensors["gate.weight"], tensors["gate.bias"]
        model.validation_, model.user_text_ = meta["validation"], meta.get("user_text")  # text: older folders
        if meta["added"]:
            model.added_ = meta["added"]
        warm_items = getattr(getattr(model.warm_, "graph_", None), "matrix", None)
        if warm_items is not None and warm_items.shape[1] != model.warm_items_:
            raise ValueError(f"{folder / WARM_DIR}: the graph half has {warm_items.shape[1]} items, "
                             f"{where} has {model.warm_items_} (+{meta['added']} added); the folder is inconsistent")
        model.new_users_ = cls._read_new_users(tensors, meta, where)
        if meta.get("profiles"):
            if meta["profiles"] not in tensors:
                raise ValueError(f"{where} lacks the array {meta['profiles']!r} that {folder / CONFIG_FILE} names")
            profiles = tensors[meta["profiles"]]
            check_shape(meta["profiles"], profiles.shape[1:], tuple(model.text_.shape[1:]), where)
            model.__dict__["_user_profiles"] = profiles
        model._set_counts(tensors["counts"].cpu().numpy())
        return model

    @staticmethod
    def _read_new_users(tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: Path) -> NewUserPath:
        """The new-user path's arrays, shapes checked (a model saved without them has none)."""
        n_items = tensors["text"].shape[0] - meta["added"]
        gates = {}
        for name in (*USER_BUCKETS, *(b + NO_SIDE for b in USER_BUCKETS)):
            if f"new_users.{name}.weight" in tensors:
                weight, bias = tensors[f"new_users.{name}.weight"], tensors[f"new_users.{name}.bias"]
                check_shape(f"new_users.{name}.weight", weight.shape, (len(NEW_USER_FEATURES), len(BUCKET_EDGES) + 1), where)
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
        return NewUserPath(vectors, side, gates, counts, meta.get("new_users") or {})


@register("hybrid")
def _hybrid(params: dict[str, Any]) -> Recommender:
    return FusionHybrid(from_dict(FusionConfig, params, "hybrid"))
