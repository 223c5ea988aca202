"""The hybrid's new-user path: users the graph never trained on, with side information and/or a few items.

A new user (no training interactions) who brings at most ``COLD_USER_MAX`` known items is scored
by a gate of their own, one per user bucket (0 items; 1–4 items), over the hybrid's signals plus
``side``: the user-side content path of :mod:`hybrid.fusion.user_side` (their side information
mapped into item preferences). With items, the graph half folds them in (a graph filter filters
the few items; an embedding model folds in a vector) and the text signals read them; with side
information, ``side`` and the text profile read it: both at once when a user gives both.

The gates are fitted on a rehearsal of new users. With a time rehearsal (``new_users_at_cut``),
they are the users it sees arrive: first seen after its cut, read by the graph half fitted at the
cut (they are new to it), a share of them left to the zero-history floor's judges. Otherwise, or
with too few arrivals, a seeded share of the users with at least ``MIN_HISTORY`` interactions are
removed from the fit graph entirely (the graph half and the side regression are refitted without
them, so they are as new as a real new user). Each then reveals none, or 1–4 of their earliest
items (uniformly, always leaving one), and the gate learns to rank the rest of their items (their
validation positives included) from the signals, as the item gate does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import NAMES, SPARSE_BELOW, bucket_of
from hybrid.data.interactions import Interactions, merged
from hybrid.fusion.columns import (
    ColumnBatch,
    ColumnState,
    column_batches,
    column_examples,
    column_tops,
    pair_fuse,
)
from hybrid.fusion.config import FusionConfig
from hybrid.fusion.floor import MIN_JUDGES, ZeroHistoryPrior, choose_zero_history_prior
from hybrid.fusion.gate import fit_gate, fuse, gate_examples
from hybrid.fusion.rehearsal import ColdValidation, earliest, first_items, subset
from hybrid.fusion.signals import FEATURES, SignalBatches, SignalSet, standardise
from hybrid.fusion.trend import recent_counts
from hybrid.fusion.user_side import SideRegression
from hybrid.metrics import recall_at, top_unknown
from hybrid.models.base import FitData, Recommender, make_model
from hybrid.retrieval.ann import AnnIndex

logger = logging.getLogger(__name__)

COLD_USER_MAX = SPARSE_BELOW - 1  # a new user with at most this many known items gets the new-user gates
USER_BUCKETS = NAMES[:2]  # their count buckets (hybrid.data.buckets): none, 1-4
NO_SIDE = " no side"  # suffix of the gate for users of a bucket who give no side information
NEW_USER_FEATURES = (*FEATURES[:-1], "side", FEATURES[-1])  # popularity stays last (no hard negatives of its own)
MIN_HISTORY = 5  # rehearsal users need this many interactions (≥ 1 left after revealing 4)
MIN_USERS = 20  # fewer eligible users than this: no new-user gates (logged)
JUDGE_SHARE = 0.3  # of the users a time rehearsal sees arrive: left to the floor's judges


class TextSide(Protocol):
    """What the new-user path reads of the fitted hybrid: its settings, text vectors and
    neighbours, its graph half's name, and its text profiles of users."""

    config: FusionConfig
    device_: torch.device
    text_: torch.Tensor
    neighbours_: sp.csr_matrix
    warm_name_: str
    trend_days_: float | None

    def text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: SignalSet | None = None,
                      encoded: torch.Tensor | None = None) -> torch.Tensor | None: ...


@dataclasses.dataclass
class SignalRows:
    """What the hybrid fuses for a batch of users (:meth:`FusionHybrid.signal_rows`).

    Attributes:
        signals: :data:`FEATURES` signals, each float32 [b, n_items], standardised.
        new_rows: int64 positions of the rows the new-user path scores (:meth:`NewUserPath.rows`).
        side: float32 [len(new_rows), n_items] their ``side`` signal, or None without such rows.
        known: int64 [len(new_rows)] their known-item counts; has_side: bool [len(new_rows)].
    """

    signals: list[torch.Tensor]
    new_rows: np.ndarray
    side: torch.Tensor | None
    known: np.ndarray
    has_side: np.ndarray


def user_bucket(known: np.ndarray) -> np.ndarray:
    """Index into :data:`USER_BUCKETS` of each known-item count (only meaningful where ≤ COLD_USER_MAX)."""
    return (np.asarray(known) > 0).astype(np.int64)


class NewUserPath:
    """Side vectors, the side regression and the new-user gates of one fitted hybrid.

    Attributes:
        user_vectors: float32 [n_users, d] encoded side information (zero rows: none), or None.
        side: the fitted :class:`SideRegression`, or None without side information.
        gates: bucket name -> (weight [F', B], bias [B]) for :data:`NEW_USER_FEATURES`.
        user_counts: int64 [n_users] training interactions per user (0: a new user).
        validation: what the rehearsal measured, for ``chosen()``.
        prior: what ranks users with no item at all: their gate, or the simple prior that beat it
            on users it was not fitted on (:mod:`hybrid.fusion.floor`).
    """

    def __init__(self, user_vectors: torch.Tensor | None, side: SideRegression | None,
                 gates: dict[str, tuple[torch.Tensor, torch.Tensor]], user_counts: np.ndarray,
                 validation: dict[str, Any], prior: ZeroHistoryPrior | None = None) -> None:
        self.user_vectors, self.side, self.gates = user_vectors, side, gates
        self.user_counts, self.validation = np.asarray(user_counts, dtype=np.int64), validation
        self.prior = prior or ZeroHistoryPrior()

    # ------------------------------------------------------------------ scoring
    def rows(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Positions of the rows scored by a new-user gate: users never trained on (index < 0: a
        facade's new user) with at most COLD_USER_MAX known items."""
        if not self.gates:
            return np.zeros(0, np.int64)
        users = np.asarray(users)
        untrained = (users < 0) | (users >= len(self.user_counts))
        inside = ~untrained
        untrained[inside] = self.user_counts[users[inside]] == 0
        return np.flatnonzero(untrained & (np.diff(history.indptr) <= COLD_USER_MAX))

    def features(self, users: np.ndarray, override: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
        """Side vectors [b, d] of ``users`` (``override`` when given; zero where none), or None."""
        if override is not None:
            return override
        if self.user_vectors is None:
            return None
        out = torch.zeros(len(users), self.user_vectors.shape[1], device=device)
        inside = (users >= 0) & (users < self.user_vectors.shape[0])
        out[torch.as_tensor(inside, device=device)] = self.user_vectors[torch.as_tensor(users[inside], device=device)]
        return out

    def side_signal(self, features: torch.Tensor | None, rows: int, n_items: int, device: torch.device) -> torch.Tensor:
        """The standardised ``side`` signal [rows, n_items] (zeros without a side regression)."""
        if self.side is None or features is None:
            return torch.zeros(rows, n_items, device=device)
        scores = self.side.score(features)
        if scores.shape[1] < n_items:  # items added after fit: no side score
            scores = torch.nn.functional.pad(scores, (0, n_items - scores.shape[1]))
        return standardise(scores)

    def gate_names(self, known: np.ndarray, has_side: np.ndarray) -> np.ndarray:
        """object [rows]: the name of the gate each new-user row is scored by (by its known-item
        count, `` no side`` where it has no side information and the path has such a gate); a
        name not in ``gates`` leaves the row to the item gate."""
        names = np.asarray([USER_BUCKETS[b] for b in user_bucket(known)], dtype=object)
        without = ~np.asarray(has_side, dtype=bool) & np.asarray([n + NO_SIDE in self.gates for n in names], dtype=bool)
        names[without] = names[without] + NO_SIDE
        return names

    def fuse_rows(self, signals: list[torch.Tensor], side: torch.Tensor, known: np.ndarray, has_side: np.ndarray,
                  buckets: torch.Tensor, out: torch.Tensor, cols: np.ndarray | None = None) -> None:
        """Write the new-user gates' scores of these rows into ``out`` (the rows' fused scores, in
        place): each row by its bucket's gate, the bucket's no-side gate where the row has no side
        information and the path has one. ``cols``: the item indices of ``out``'s columns (column
        scoring, :mod:`hybrid.fusion.candidates`); None: every item, in order."""
        ordered = [*signals[:-1], side, signals[-1]]
        names = self.gate_names(known, has_side)
        for name in dict.fromkeys(names.tolist()):
            rows = np.flatnonzero(names == name)
            if name in self.gates:
                picked = torch.as_tensor(rows, device=out.device)
                weight, bias = self.gates[name]
                out[picked] = fuse([s[picked] for s in ordered], weight, bias, buckets)
        empty = np.flatnonzero(np.asarray(known) == 0)
        if self.prior.scores is not None and len(empty):  # the floor: a prior beat the zero-history gate
            scores = self.prior.scores.to(out.device)
            n_items = out.shape[1] if cols is None else int(np.max(cols, initial=-1)) + 1
            if scores.shape[0] < n_items:  # items added after fit: nothing to count yet
                scores = torch.nn.functional.pad(scores, (0, n_items - scores.shape[0]))
            if cols is not None:  # the prior of the columns scored, not of the whole catalogue
                scores = scores[torch.as_tensor(cols, dtype=torch.int64, device=out.device)]
            out[torch.as_tensor(empty, device=out.device)] = scores


def time_new_users(split: ColdValidation, data: FitData, limit: int, rng: np.random.Generator,
                   ) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """The users a time rehearsal sees arrive: none of their interactions before its cut and at
    least two after (one to reveal, one to judge), a seeded sample of at most ``limit``, each with
    their items in time order; None where fewer than ``MIN_USERS + MIN_JUDGES`` arrive (the
    floor judges the users left out). Why: a random user asked to predict their whole history is
    not a newcomer, who buys what newcomers buy in the period they arrive."""
    if split.by != "time":
        return None
    late = split.positives.getnnz(axis=1)
    users = np.flatnonzero((split.fit.user_counts() == 0) & (late >= 2))
    if len(users) < MIN_USERS + MIN_JUDGES:
        return None
    fitted = min(limit, len(users) - MIN_JUDGES, max(MIN_USERS, round(len(users) * (1 - JUDGE_SHARE))))
    users = np.sort(rng.choice(users, fitted, replace=False))
    return users, earliest(merged(data.train, data.valid), users)


@dataclasses.dataclass
class Rehearsed:
    """Who the new-user gates rehearse: ``users`` (in order), each one's items in time order
    (``first``) and every item to judge them on (``everything``, CSR rows), the graph they are new
    to (``fit``) with its graph half (``warm``), and how they were chosen."""

    users: np.ndarray
    first: list[np.ndarray]
    everything: sp.csr_matrix
    fit: Interactions
    warm: Recommender
    how: str


def rehearsal_users(model: TextSide, split: ColdValidation, data: FitData, warm_at_cut: Recommender | None,
                    rng: np.random.Generator) -> Rehearsed | None:
    """The arrivals of a time rehearsal (:func:`time_new_users`), else a random share of the users
    with ``MIN_HISTORY`` interactions held out of a refitted graph half; None with too few (logged)."""
    config, fit = model.config, split.fit
    limit = config.rehearsal_users(fit.n_items)
    arrivals = (time_new_users(split, data, limit, rng)
                if config.new_users_at_cut and warm_at_cut is not None else None)
    if arrivals is not None:
        users, first = arrivals
        logger.info("hybrid: new-user gates rehearsed on %d users first seen after the rehearsal's cut", len(users))
        return Rehearsed(users, first, (split.positives[users] > 0).astype(np.float32).tocsr(), fit, warm_at_cut,
                         "first seen after the cut")
    eligible = np.flatnonzero(fit.user_counts() >= MIN_HISTORY)
    if len(eligible) < MIN_USERS:
        logger.info("hybrid: only %d users have %d+ interactions; no new-user gates (new users get the item gate)",
                    len(eligible), MIN_HISTORY)
        return None
    n = min(limit, max(MIN_USERS, round(len(eligible) * config.valid_new_share)))
    users = np.sort(rng.choice(eligible, min(n, len(eligible)), replace=False))
    reduced = subset(fit, ~np.isin(fit.users, users))
    warm = make_model(model.warm_name_, config.warm_params_of(model.warm_name_)).fit(
        dataclasses.replace(data, train=reduced, valid=None))
    everything = ((fit.matrix() + split.positives) > 0).astype(np.float32).tocsr()[users]
    return Rehearsed(users, earliest(fit, users), everything, reduced, warm, "random")


def fit_new_user_path(model: TextSide, split: ColdValidation, data: FitData, user_vectors: torch.Tensor | None,
                      warm_at_cut: Recommender | None = None, texts: AnnIndex | None = None) -> NewUserPath:
    """Rehearse new users (:func:`rehearsal_users`; ``warm_at_cut``: the graph half at ``split.fit``)
    and fit the gates (module docstring), on candidate columns given the text index ``texts``; the
    returned path's side regression is then refitted by :func:`refit_side` on every training user."""
    device = model.device_
    rng = np.random.default_rng(data.seed + 1)
    rehearsed = rehearsal_users(model, split, data, warm_at_cut, rng)
    if rehearsed is None:
        return NewUserPath(user_vectors, None, {}, data.train.user_counts(), {"skipped": "too few eligible users"})
    config, users, first, everything, reduced, warm = (model.config, rehearsed.users, rehearsed.first,
                                                       rehearsed.everything, rehearsed.fit, rehearsed.warm)
    side = None
    if user_vectors is not None:
        others = np.flatnonzero(reduced.user_counts() > 0)
        side = SideRegression().fit(user_vectors[torch.as_tensor(others, device=device)], reduced.matrix()[others], data.seed)
    counts = reduced.item_counts()
    builder = SignalSet(model.text_, model.neighbours_, counts, device, recent_counts(reduced, model.trend_days_))
    buckets = torch.as_tensor(bucket_of(counts), device=device)
    new_items = torch.as_tensor(counts == 0, device=device)
    columns = None if texts is None else ColumnState.of(builder, warm, buckets, texts, config.candidates)
    path = NewUserPath(user_vectors, side, {}, reduced.user_counts(), {})
    gates, validation = {}, {"users": len(users), "rehearsal users": rehearsed.how}
    none, few = USER_BUCKETS
    lengths = np.array([len(f) for f in first])
    reveals = {none: np.zeros(len(users), np.int64),
               few: np.minimum(rng.integers(1, COLD_USER_MAX + 1, len(users)), lengths - 1)}
    variants = [(none, none, True), (few, few, True)]
    if side is not None:  # a user who brings items but no side information gets a gate fitted that way
        variants.append((few + NO_SIDE, few, False))
    for name, bucket, with_side in variants:
        revealed = first_items(first, reveals[bucket], reduced.n_items)
        positives = ((everything - revealed) > 0).astype(np.float32).tocsr()
        keep = np.flatnonzero(positives.getnnz(axis=1) > 0)

        if columns is None:
            batches = rehearsal_batches(model, path, warm, builder, buckets, users, keep, revealed, positives, with_side)
            examples = gate_examples(batches, new_items, buckets, rng, config.candidates, config.random_negatives,
                                     config.max_positives)
        else:
            batches = column_rehearsal(model, path, columns, users[keep], revealed[keep], positives[keep], with_side,
                                       int(rng.integers(2**31)))
            examples = column_examples(batches, new_items, buckets, rng, config.max_positives)
        weights = torch.where(examples.new, config.new_weight, 1.0)
        gate, loss = fit_gate(examples, weights, config.reg, config.bucket_reg, config.steps)
        gates[name] = (gate.weight.detach().clone(), gate.bias.detach().clone())
        recall = (rehearsal_recall if columns is None else column_rehearsal_recall)(gates[name], batches,
                                                                                   positives[keep], buckets)
        validation[name] = {"loss": round(loss, 4), **recall,
                            "weights": {f: [round(v, 4) for v in row]
                                        for f, row in zip(NEW_USER_FEATURES, gate.weight.tolist(), strict=True)}}
    if side is not None:
        validation["side ridge, power"] = [side.ridge_, side.power_]
        validation["side held-out recall@20 + ndcg@20 by 'ridge power'"] = side.valid_
    logger.info("hybrid: new-user gates fitted on %d rehearsal users: %s", len(users), validation)
    prior = choose_zero_history_prior(model, NewUserPath(user_vectors, side, gates, reduced.user_counts(), {}),
                                      merged(data.train, data.valid), users, data.seed) if config.floor else None
    if prior is not None:
        validation["zero-history floor"] = prior.record
    return NewUserPath(user_vectors, side, gates, data.train.user_counts(), validation, prior)


def refit_side(path: NewUserPath, rows: sp.csr_matrix, seed: int) -> None:
    """The side regression refitted on every user with interactions in ``rows`` (CSR [n_users, n_items])."""
    if path.user_vectors is None or not path.gates:
        return
    users = np.flatnonzero(rows.getnnz(axis=1) > 0)
    device = path.user_vectors.device
    path.side = SideRegression().fit(path.user_vectors[torch.as_tensor(users, device=device)], rows[users], seed)
    path.user_counts = np.asarray(rows.getnnz(axis=1), dtype=np.int64)


def rehearsal_batches(model: TextSide, path: NewUserPath, warm: Recommender, builder: SignalSet, buckets: torch.Tensor,
                      users: np.ndarray, keep: np.ndarray, revealed: sp.csr_matrix, positives: sp.csr_matrix,
                      with_side: bool) -> SignalBatches[tuple[list[torch.Tensor], torch.Tensor, sp.csr_matrix]]:
    """(signals, revealed items as bool, positives) per batch of rehearsal users ``users[keep]``:
    the gate's fit and its rehearsal recall read them both (:class:`SignalBatches`)."""
    size, device = model.config.batch_size, model.device_

    def batches() -> Iterator[tuple[list[torch.Tensor], torch.Tensor, sp.csr_matrix]]:
        for start in range(0, len(keep), size):
            rows = keep[start:start + size]
            signals = rehearsal_signals(model, path, warm, builder, buckets, users[rows], revealed[rows], with_side)
            yield signals, torch.as_tensor((revealed[rows] > 0).toarray(), device=device), positives[rows]

    return SignalBatches(batches, len(keep) * revealed.shape[1] * len(NEW_USER_FEATURES))


def rehearsal_signals(model: TextSide, path: NewUserPath, warm: Recommender, builder: SignalSet,
                      buckets: torch.Tensor, users: np.ndarray, revealed: sp.csr_matrix, with_side: bool) -> list[torch.Tensor]:
    """:data:`NEW_USER_FEATURES` of rehearsal users with their revealed items, as at scoring time
    (``with_side`` False: as for users who give no side information, profile text included)."""
    graph = warm.score(users, revealed)
    graph[:, buckets == 0] = 0
    profiles = model.text_profiles(users, revealed, builder, path.user_vectors) if with_side else None
    signals = builder.signals(graph, revealed, profiles)
    features = path.features(users, None, model.device_) if with_side else None
    side = path.side_signal(features, len(users), revealed.shape[1], model.device_)
    return [*signals[:-1], side, signals[-1]]


def rehearsal_recall(gate: tuple[torch.Tensor, torch.Tensor], batches: Iterable, positives: sp.csr_matrix,
                     buckets: torch.Tensor, k: int = 20) -> dict[str, float]:
    """Rehearsal Recall@k of the gate's list and of popularity and side alone, for the record."""
    names = ("new-user gate", "side", "popularity")
    tops: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with torch.no_grad():
        for signals, known, _ in batches:
            fused = fuse(signals, gate[0], gate[1], buckets)
            for name, scores in zip(names, (fused, signals[-2], signals[-1]), strict=True):
                tops[name].append(top_unknown(scores, known, k))
    return {f"valid_recall@{k} {name}": recall_at(np.concatenate(t), positives) for name, t in tops.items()}


def column_rehearsal(model: TextSide, path: NewUserPath, columns: ColumnState, users: np.ndarray,
                     revealed: sp.csr_matrix, positives: sp.csr_matrix, with_side: bool,
                     seed: int) -> SignalBatches[ColumnBatch]:
    """:func:`rehearsal_batches` on candidate columns (:mod:`hybrid.fusion.columns`)."""
    config, device, builder = model.config, model.device_, columns.builder

    def profiles(batch: np.ndarray, rows: sp.csr_matrix) -> torch.Tensor:
        text = model.text_profiles(batch, rows, builder, path.user_vectors) if with_side else None
        return builder.profile_vectors(rows) if text is None else text

    def side(batch: np.ndarray) -> tuple[SideRegression | None, torch.Tensor | None]:
        return (path.side, path.features(batch, None, device)) if with_side else (None, None)

    make = partial(column_batches, columns, users, revealed, positives, profiles, config.batch_size, seed,
                   config.candidates, config.random_negatives, side)
    return SignalBatches(make, len(users) * config.columns_per_user() * len(NEW_USER_FEATURES))


def column_rehearsal_recall(gate: tuple[torch.Tensor, torch.Tensor], batches: Iterable[ColumnBatch],
                            positives: sp.csr_matrix, buckets: torch.Tensor, k: int = 20) -> dict[str, float]:
    """:func:`rehearsal_recall` on candidate columns."""
    tops = column_tops(batches, {"new-user gate": lambda b: pair_fuse(b, gate[0], gate[1], buckets),
                                 "side": lambda b: b.signals[-2], "popularity": lambda b: b.signals[-1]})
    return {f"valid_recall@{k} {name}": recall_at(t, positives, padded=True) for name, t in tops.items()}
