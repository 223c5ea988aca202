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
   with timestamps, time rehearsals of the training period cut short (``earlier_cuts``, each with
   its own warm scorer fitted on its own past) add their users' examples to the same fit;
3. with ``refit`` (default) the warm scorer is fitted again on all training interactions, so
   recommendations use everyone's latest item.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.buckets import bucket_of
from hybrid.data.interactions import Interactions, merged
from hybrid.data.text_features import encode_texts
from hybrid.fusion import persist
from hybrid.fusion.candidates import (
    column_scores,
    hybrid_item_factors,
    hybrid_user_factors,
    reference_items,
)
from hybrid.fusion.config import FusionConfig
from hybrid.fusion.explain import ExplainedRow, explain_rows
from hybrid.fusion.floor import prior_scores
from hybrid.fusion.gate import fuse
from hybrid.fusion.neighbours import EXACT_KNN_MAX, ivf_index, text_neighbours
from hybrid.fusion.new_users import NewUserPath, SignalRows, fit_new_user_path, refit_side
from hybrid.fusion.rehearsal import ColdValidation, cold_validation, earlier_rehearsals
from hybrid.fusion.selection import choose_graph_half, fit_item_gate
from hybrid.fusion.signals import SignalSet
from hybrid.fusion.trend import choose_window, recent_counts
from hybrid.fusion.user_text import UserTextState, encode, side_vectors
from hybrid.models.base import FitData, Recommender, make_model, register
from hybrid.persistence import atomic_folder, verify_folder, write_manifest
from hybrid.profiling import StageProfile
from hybrid.retrieval.ann import AnnIndex

logger = logging.getLogger(__name__)


def item_vectors(texts: list[str], config: FusionConfig) -> np.ndarray:
    """The item texts' vectors, encoded by Ray actors into the cache first where ``config.ray``
    says so (Ray, an optional extra, is imported only then)."""
    if config.ray is None:
        return encode_texts(texts, config.encoder)
    from hybrid.data.ray_encode import encode_texts_on_ray

    return encode_texts_on_ray(texts, config.encoder, config.ray, config.ray_workers)


def earlier_halves(name: str, config: FusionConfig, data: FitData) -> list[tuple[ColdValidation, Recommender]]:
    """The earlier cuts' rehearsals (:func:`~hybrid.fusion.rehearsal.earlier_rehearsals`), each with
    its own graph half ``name`` fitted on that cut's past alone."""
    cuts = earlier_rehearsals(data.train, data.valid, config.valid_new_share, data.seed, config.earlier_cuts)
    return [(cut, make_model(name, config.warm_params_of(name)).fit(dataclasses.replace(data, train=cut.fit, valid=None)))
            for cut in cuts]


class FusionHybrid(Recommender):
    """The ``hybrid`` model (see the module docstring).

    Attributes (after fit/load):
        warm_: the fitted warm scorer; text_: float32 [n_items, d] normalised text vectors;
        neighbours_: CSR text neighbours; counts_: int64 [n_items] graph counts the gate is
        applied with; gate_weight_ float32 [F, B] / gate_bias_ [B]: the fitted :class:`Gate`;
        validation_: what the gate was fitted on; new_users_: the new-user path
        (:mod:`hybrid.fusion.new_users`); user_text_: the users' profile text, a
        :class:`~hybrid.fusion.user_text.UserTextState` with its own save and load.
    """

    name = "hybrid"
    zero_history_prior = True  # the new-user path: popularity, side information, profile text

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
            # Normalised in place, not kept unnormalised: at a million items each copy is 1.5 GB.
            text = torch.as_tensor(item_vectors(data.item_text, config), device=self.device_)
            self.text_ = torch.nn.functional.normalize(text, dim=1, out=text)
        texts = self._text_graph(profile)
        by = config.valid_new_by
        if by == "auto":  # from the training data alone: a deployment never says how its new items arise
            by = "time" if data.train.has_time else "random"
        with profile.stage("rehearsal split"):
            split = cold_validation(data.train, data.valid, config.valid_new_share, by, data.seed)
        self.user_text_ = UserTextState(config.encoder, self.device_, data.user_text if config.use_user_text else None)
        # What refit_graph gives the graph half, as fit gave it: the items' text and the seed.
        self.item_text_, self.seed_ = list(data.item_text), data.seed
        self.warm_name_, warm, warm_recall = choose_graph_half(config, split, data, profile)
        with profile.stage("earlier cuts"):
            earlier = earlier_halves(self.warm_name_, config, data)
        with profile.stage("gate"):
            self.trend_days_, trend_recall = choose_window(split)
            gate, self.validation_ = fit_item_gate(config, warm, split, self.text_, self.neighbours_, data.seed,
                                                   self.trend_days_, earlier, texts)
            self.validation_["trending window days"] = self.trend_days_
            self.validation_["trending valid_recall@20 by window"] = trend_recall
        del earlier  # their graph halves: factors of the whole catalogue each
        with profile.stage("encode user text"):
            user_vectors = side_vectors(data.user_text, config.encoder, self.device_)
        with profile.stage("new-user path"):
            if config.new_users:
                self.new_users_ = fit_new_user_path(self, split, data, user_vectors, warm, texts)
            else:
                self.new_users_ = NewUserPath(None, None, {}, data.train.user_counts(), {"skipped": "new_users: false"})
        self.gate_weight_, self.gate_bias_ = gate.weight.detach().clone(), gate.bias.detach().clone()
        self.validation_["rehearsal"] = split.by
        self.validation_["warm_model"] = self.warm_name_
        self.validation_["warm_only valid_recall@20 by warm model"] = warm_recall
        with profile.stage("refit"):
            if config.refit:
                self.warm_ = make_model(self.warm_name_, config.warm_params_of(self.warm_name_)).fit(data)
                counts = data.train.item_counts()
                if data.valid is not None:
                    counts = counts + data.valid.item_counts()
            else:
                self.warm_, counts = warm, split.fit.item_counts()
        everything = merged(data.train, data.valid) if config.refit else split.fit
        self.recent_ = recent_counts(everything, self.trend_days_)
        with profile.stage("side regression"):
            rows = merged(data.train, data.valid).matrix()
            refit_side(self.new_users_, (rows > 0).astype(np.float32).tocsr(), data.seed)
        with profile.stage("index"):
            self.set_counts(counts)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _text_graph(self, profile: StageProfile) -> AnnIndex | None:
        """Set the text-neighbour graph; return the IVF index over the text vectors where the gates
        rehearse on candidate columns (past ``column_items`` items), else None. One index serves
        both where the neighbour search needs one too (past ``EXACT_KNN_MAX`` items)."""
        config, n_items = self.config, len(self.text_)
        with profile.stage("text index"):
            index = ivf_index(self.text_) if n_items > min(config.column_items, EXACT_KNN_MAX) else None
        with profile.stage("text kNN"):
            self.neighbours_ = text_neighbours(self.text_, config.neighbours, ray=config.ray, workers=config.ray_workers,
                                               index=index if n_items > EXACT_KNN_MAX else None)
        return index if n_items > config.column_items else None

    def chosen(self) -> dict[str, Any]:
        """The gate (weights per count bucket), the rehearsal it was fitted on, the new-user gates and
        the graph half's choices."""
        profile = getattr(self, "profile_", None)  # None on a loaded model: it was not fitted here
        return {**self.validation_, "new users": self.new_users_.validation, "warm": self.warm_.chosen(),
                **({"profile": profile.record()} if profile is not None else {})}

    def set_counts(self, counts: np.ndarray) -> None:
        """The graph counts the gate is applied with (and what follows from them: the count
        buckets, the signal builder, the reference items). The recent counts (``recent_``, None
        without timestamps) stay as the fit counted them; items added since have none."""
        self.counts_ = np.asarray(counts, dtype=np.int64)
        recent = getattr(self, "recent_", None)
        if recent is not None and len(recent) < len(self.counts_):
            self.recent_ = recent = np.pad(recent, (0, len(self.counts_) - len(recent)))
        self.reference_ = reference_items(len(self.counts_), seed=0)
        self.builder_ = SignalSet(self.text_, self.neighbours_, self.counts_, self.device_, recent)
        self.buckets_ = torch.as_tensor(bucket_of(self.counts_), device=self.device_)

    # ------------------------------------------------------------------ score
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.score_users(users, history)

    def score_users(self, users: np.ndarray, history: sp.csr_matrix, side: torch.Tensor | None = None,
                    profiles: torch.Tensor | None = None) -> torch.Tensor:
        """``score`` with a new user's side vectors [b, d] and text profiles [b, d] given directly
        (the facade's users with no index); None: from the fitted users' side information."""
        return self.fuse_rows(self.signal_rows(users, history, side, profiles))

    def fuse_rows(self, rows: SignalRows) -> torch.Tensor:
        """The fused scores [b, n_items] of :meth:`signal_rows`' rows: the item gate, the new-user
        path's rows by their gates (or the zero-history floor's prior)."""
        with torch.no_grad():
            fused = fuse(rows.signals, self.gate_weight_, self.gate_bias_, self.buckets_)
            if len(rows.new_rows):
                picked = torch.as_tensor(rows.new_rows, device=self.device_)
                part = fused[picked]
                self.new_users_.fuse_rows([sig[picked] for sig in rows.signals], rows.side, rows.known, rows.has_side,
                                          self.buckets_, part)
                fused[picked] = part
            return fused

    def signal_rows(self, users: np.ndarray, history: sp.csr_matrix, side: torch.Tensor | None = None,
                    profiles: torch.Tensor | None = None) -> SignalRows:
        """What :meth:`score_users` fuses (its arguments as there): every signal of every row, and
        which rows the new-user path scores with what (:class:`~hybrid.fusion.new_users.SignalRows`);
        :mod:`hybrid.fusion.explain` reads the same numbers."""
        users = np.asarray(users)
        n_warm = self.warm_items_
        with torch.no_grad():
            graph = self.graph_scores(users, history[:, :n_warm])
            if graph.shape[1] < history.shape[1]:  # items added after fit: no graph score
                graph = torch.nn.functional.pad(graph, (0, history.shape[1] - graph.shape[1]))
            graph[:, self.buckets_ == 0] = 0
            if profiles is None:
                profiles = self.text_profiles(users, history, encoded=self.new_users_.user_vectors)
            signals = self.builder_.signals(graph, history, profiles)
            rows = self.new_users_.rows(users, history)
            if not len(rows):
                return SignalRows(signals, rows, None, np.zeros(0, np.int64), np.zeros(0, bool))
            picked = torch.as_tensor(rows, device=self.device_)
            features = self.new_users_.features(users[rows], None if side is None else side[picked], self.device_)
            side_signal = self.new_users_.side_signal(features, len(rows), history.shape[1], self.device_)
            has_side = np.zeros(len(rows), bool) if features is None else (features != 0).any(1).cpu().numpy()
            return SignalRows(signals, rows, side_signal, np.diff(history.indptr)[rows], has_side)

    def explain(self, users: np.ndarray, history: sp.csr_matrix, items: list[np.ndarray],
                side: torch.Tensor | None = None, profiles: torch.Tensor | None = None,
                two_stage: bool = False, rows: SignalRows | None = None) -> list[ExplainedRow]:
        """Why each row's ``items`` (item indices) score as they do (:mod:`hybrid.fusion.explain`):
        rows and arguments as :meth:`score_users` (``two_stage``: as :meth:`score_candidates`;
        ``rows``: the :meth:`signal_rows` a ranking fused, not computed again); only reads the model."""
        return explain_rows(self, users, history, items, side, profiles, two_stage, rows)

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

    def graph_scores(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
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

    def score_text(self, text: str, n_items: int) -> torch.Tensor:
        """float32 [1, n_items] scores for a zero-history user described by ``text``: the one
        zero-history path (the facade's text and profile-only users both come here), the text
        their side information and their profile. With new-user gates that is the zero-history
        gate, or the floor's prior where it beat that gate on users it was not fitted on; a hybrid
        without new-user gates (``new_users: false``, too few users to rehearse) ranks them by
        the item gate, the text as their profile; its graph signal is then a graph filter's score of
        an empty history (0 for every item: no graph score), or for an embedding half (LightGCN,
        MF) the fold-in of an empty history, its population prior (the mean trained user vector)."""
        vectors = self.text_vectors([text])
        history = sp.csr_matrix((1, n_items), dtype=np.float32)
        return self.score_users(np.array([-1]), history, side=vectors, profiles=vectors)

    def text_vectors(self, texts: list[str]) -> torch.Tensor:
        """float32 [n, d] normalised text vectors through the fitted encoder."""
        return encode(texts, self.config.encoder, self.device_)

    def text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: SignalSet | None = None,
                      encoded: torch.Tensor | None = None) -> torch.Tensor | None:
        """Profile vectors where a zero-history user has profile text, or None
        (:meth:`UserTextState.text_profiles`; ``builder`` default the fitted one)."""
        return self.user_text_.text_profiles(users, history, builder or self.builder_, encoded)

    def refit_graph(self, history: sp.csr_matrix) -> None:
        """Refit the graph half on a new binary interaction matrix [n_users, n_items] (every item
        the model knows, added ones included), keeping the gate; the count buckets follow."""
        if history.shape[1] != self.text_.shape[0]:
            raise ValueError(f"history has {history.shape[1]} items, the model {self.text_.shape[0]}")
        coo = history.tocoo()
        users, items = pd.RangeIndex(history.shape[0]), pd.RangeIndex(history.shape[1])
        train = Interactions(pd.Index(users), pd.Index(items), coo.row.astype(np.int64), coo.col.astype(np.int64),
                             np.ones(coo.nnz, np.float32), None)
        self.warm_ = make_model(self.warm_name_, self.config.warm_params_of(self.warm_name_)).fit(
            FitData(train=train, item_text=self.item_text_, device=self.device_, seed=self.seed_))
        self.added_ = 0
        # A path of its own (a copy of this model may share the old one), its side vectors padded
        # with zero rows for new users (who bring no side text) and its side regression refitted on
        # every item, so the saved arrays agree with each other.
        path = self.new_users_ = copy.copy(self.new_users_)
        if path.user_vectors is not None and path.user_vectors.shape[0] < history.shape[0]:
            path.user_vectors = torch.nn.functional.pad(path.user_vectors, (0, 0, 0, history.shape[0] - path.user_vectors.shape[0]))
        refit_side(path, history.tocsr(), seed=self.seed_)
        path.user_counts = train.user_counts()
        if path.prior.scores is not None:  # the floor's prior, counted again (a refit has no times: popularity)
            path.prior = dataclasses.replace(path.prior, scores=prior_scores(train, "popularity", None).to(self.device_))
        counts = train.item_counts()
        if self.recent_ is not None:  # what joined since the fit is the latest there is: it counts as recent
            before = np.pad(self.counts_, (0, len(counts) - len(self.counts_)))
            recent = np.pad(self.recent_, (0, len(counts) - len(self.recent_)))
            self.recent_ = recent + np.maximum(counts - before, 0)
        self.set_counts(counts)

    def add_items(self, texts: list[str]) -> None:
        """Append items with no interactions: ranked by their text (and their text neighbours' graph scores)."""
        new = self.text_vectors(texts)
        self.text_ = torch.cat([self.text_, new])
        self.neighbours_ = text_neighbours(self.text_, self.config.neighbours)
        self.added_ = getattr(self, "added_", 0) + len(texts)
        if self.item_text_ is not None:  # a new list: a copy of this model may share the old one
            self.item_text_ = [*self.item_text_, *texts]
        self.set_counts(np.concatenate([self.counts_, np.zeros(len(texts), np.int64)]))

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
        """JSON config + safetensors (text vectors, neighbours, counts, gates) and the graph half in ``warm/``."""
        persist.write(self, folder)

    @classmethod
    def read(cls, folder: Path, device: torch.device | str = "cpu") -> Self:
        """The model in ``folder`` (checked by the caller), its arrays' shapes checked against each other."""
        for name in (persist.CONFIG_FILE, persist.WEIGHTS_FILE, persist.WARM_DIR):
            if not (folder / name).exists():
                raise ValueError(f"{folder / name} is missing: {folder} is not a complete saved hybrid")
        model = cls(persist.read_config(folder))
        model.device_ = torch.device(device)
        persist.read(model, folder)
        return model


@register("hybrid")
def _hybrid(params: dict[str, Any]) -> Recommender:
    return FusionHybrid(from_dict(FusionConfig, params, "hybrid"))
