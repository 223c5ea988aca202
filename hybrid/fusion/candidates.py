"""The hybrid's score on a few items: exact signals, standardised against a fixed reference sample.

:meth:`FusionHybrid.score_users` standardises every signal per user over the whole catalogue, so
scoring a candidate needs the user's mean and spread of each signal, which a full row gives for
free and a two-stage ranker cannot afford. Here they are estimated on ``reference``: a seeded
sample of items drawn once per fitted model (``REFERENCE_ITEMS``; all items in a smaller
catalogue, which makes this path exact there). Each signal is then computed only where needed:

    graph       the warm scorer on the candidates, the reference and their text neighbours
                (``Recommender.score_columns``: dot products for the embedding models);
    text_graph  the text neighbours' graph scores, from those columns;
    profile, text_knn, popularity, side   on the candidates and the reference only.

The two-stage path (:class:`hybrid.retrieval.two_stage.TwoStage`) finds candidates through
:func:`hybrid_item_factors` / :func:`hybrid_user_factors`: the concatenation of the graph half's
factor vectors (where it has them) and the text vectors, weighted by the gate's mean graph and
profile weights and scaled by each user's reference spread, so an inner product approximates the
linear part of the fused score.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.fusion.gate import fuse
from hybrid.fusion.new_users import NewUserPath, SignalRows
from hybrid.fusion.signals import SignalSet, UserBatch, standardise
from hybrid.models.base import Recommender

REFERENCE_ITEMS = 2048


class FusionHybrid(Protocol):
    """What this module reads of a fitted hybrid (:class:`hybrid.fusion.model.FusionHybrid`)."""

    device_: torch.device
    text_: torch.Tensor
    neighbours_: sp.csr_matrix
    reference_: np.ndarray
    buckets_: torch.Tensor
    builder_: SignalSet
    gate_weight_: torch.Tensor
    gate_bias_: torch.Tensor
    warm_: Recommender
    new_users_: NewUserPath

    @property
    def warm_items_(self) -> int: ...

    def graph_scores(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor: ...

    def text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: SignalSet | None = None,
                      encoded: torch.Tensor | None = None) -> torch.Tensor | None: ...


def reference_items(n_items: int, seed: int) -> np.ndarray:
    """int64 sorted item indices: all of them up to ``REFERENCE_ITEMS``, else a seeded sample."""
    if n_items <= REFERENCE_ITEMS:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(seed).choice(n_items, REFERENCE_ITEMS, replace=False))


def column_scores(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix, cols: np.ndarray) -> torch.Tensor:
    """float32 [b, len(cols)] fused scores of items ``cols`` (int64, any order) for ``users``, each
    signal standardised on ``model.reference_`` (which ``cols`` need not contain)."""
    device = model.device_
    wanted = np.asarray(cols, dtype=np.int64)
    rows, cols = column_signal_rows(model, users, history, wanted)
    with torch.no_grad():
        buckets = model.buckets_[torch.as_tensor(cols, device=device)]
        fused = fuse(rows.signals, model.gate_weight_, model.gate_bias_, buckets)
        if len(rows.new_rows):  # the new-user gates' scores of these rows (as ``NewUserPath.fuse_rows``)
            picked = torch.as_tensor(rows.new_rows, device=device)
            part = fused[picked]
            model.new_users_.fuse_rows([s[picked] for s in rows.signals], rows.side, rows.known, rows.has_side,
                                       buckets, part, cols)
            fused[picked] = part
        return fused[:, torch.as_tensor(np.searchsorted(cols, wanted), device=device)]


def column_signal_rows(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix, wanted: np.ndarray,
                       ) -> tuple[SignalRows, np.ndarray]:
    """What :func:`column_scores` fuses: the signals of ``wanted`` and the reference items (int64
    sorted, returned beside them), each standardised on the reference, and the new-user rows'
    ``side`` signal likewise (:class:`SignalRows`; :mod:`hybrid.fusion.explain` reads it too)."""
    device = model.device_
    users = np.asarray(users)
    cols = np.union1d(wanted, model.reference_)
    reference = torch.as_tensor(np.searchsorted(cols, model.reference_), device=device)
    graph_cols = model.builder_.text_graph.neighbour_cols(cols)
    with torch.no_grad():
        profiles = model.text_profiles(users, history, encoded=model.new_users_.user_vectors)
        if profiles is None:
            profiles = model.builder_.profile_vectors(history)
        batch = UserBatch(history, _graph_columns(model, users, history, graph_cols), profiles, graph_cols)
        signals = model.builder_.columns(batch, cols, reference)
        rows = model.new_users_.rows(users, history)
        if not len(rows):
            return SignalRows(signals, rows, None, np.zeros(0, np.int64), np.zeros(0, bool)), cols
        side, has_side = _new_user_side(model, users, rows, cols, reference)
        return SignalRows(signals, rows, side, np.diff(history.indptr)[rows], has_side), cols


def _graph_columns(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix, cols: np.ndarray) -> torch.Tensor:
    """float32 [b, len(cols)] the warm scorer's scores of items ``cols`` (sorted), 0 on new items
    and on items added after fit, as in ``score_users``."""
    device = model.device_
    n_warm = model.warm_items_
    graph = torch.zeros(len(users), len(cols), device=device)
    warm = np.flatnonzero(cols < n_warm)
    if len(warm):
        if (users >= 0).all():
            part = model.warm_.score_columns(users, history[:, :n_warm], cols[warm])
        else:  # a facade's new user: folded in as score_users does
            part = model.graph_scores(users, history[:, :n_warm])[:, torch.as_tensor(cols[warm], device=device)]
        graph[:, torch.as_tensor(warm, device=device)] = part.float()
    graph[:, model.buckets_[torch.as_tensor(cols, device=device)] == 0] = 0
    return graph


def _new_user_side(model: FusionHybrid, users: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   reference: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """The ``side`` signal [len(rows), len(cols)] of the new-user ``rows`` (standardised on the
    reference) and whether each row has side information."""
    path, device = model.new_users_, model.device_
    features = path.features(users[rows], None, device)
    side = torch.zeros(len(rows), len(cols), device=device)
    if path.side is not None and features is not None:
        inside = np.flatnonzero(cols < path.side.weights_.shape[1])  # items added after fit: no side score
        side[:, torch.as_tensor(inside, device=device)] = path.side.score(
            features, torch.as_tensor(cols[inside], device=device))
        side = standardise(side, reference)
    has_side = np.zeros(len(rows), bool) if features is None else (features != 0).any(1).cpu().numpy()
    return side, has_side


def _mean_weights(model: FusionHybrid) -> tuple[float, float]:
    """The gate's graph and profile weights, averaged over the count buckets by their item counts."""
    share = torch.bincount(model.buckets_, minlength=model.gate_weight_.shape[1]).float()
    share = share / share.sum()
    graph, profile = (float(model.gate_weight_[f] @ share) for f in (0, 1))
    return graph, profile


def hybrid_item_factors(model: FusionHybrid) -> torch.Tensor:
    """float32 [n_items, d_graph + d_text]: the graph half's item factors (zero for new items and
    items added after fit; absent where the graph half has no factor form) beside the text vectors."""
    warm = model.warm_.item_factors()
    if warm is None:
        return model.text_
    rows = torch.zeros(model.text_.shape[0], warm.shape[1], device=model.device_)
    rows[: warm.shape[0]] = warm.float()
    rows[model.buckets_ == 0] = 0
    return torch.cat([rows, model.text_], dim=1)


def hybrid_user_factors(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
    """float32 [b, d_graph + d_text] queries for :func:`hybrid_item_factors`: each part weighted by
    the gate's mean weight of its signal over the user's spread of it on the reference items."""
    device = model.device_
    users = np.asarray(users)
    reference = np.asarray(model.reference_)
    w_graph, w_profile = _mean_weights(model)
    with torch.no_grad():
        profiles = model.text_profiles(users, history, encoded=model.new_users_.user_vectors)
        if profiles is None:
            profiles = model.builder_.profile_vectors(history)
        profiles = torch.nn.functional.normalize(profiles, dim=1)
        spread = (profiles @ model.text_[torch.as_tensor(reference, device=device)].T).std(1, keepdim=True)
        parts = [profiles * (w_profile / spread.clamp_min(1e-12))]
        if model.warm_.has_factors:
            queries = model.warm_.user_factors(users, history[:, : model.warm_items_]).float()
            graph = _graph_columns(model, users, history, reference)
            parts.insert(0, queries * (w_graph / graph.std(1, keepdim=True).clamp_min(1e-12)))
        return torch.cat(parts, dim=1)
