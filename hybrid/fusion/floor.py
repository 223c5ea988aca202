"""A floor for zero-history users: their gate is kept only where it beats the best simple prior.

The new-user gate of users with no items is fitted on rehearsal users asked to predict their whole
history; nothing in that checks it against what a practitioner would show such a user. Here it is
judged on users it was not fitted on, as they arrive: with timestamps, the users first seen in the
latest part of the training period (their every interaction is a target, the state before their
arrival is what every list may read); without, a seeded share of users left out of the rehearsal
(the others' interactions are the state). Each candidate list is scored by Recall@20 + NDCG@20:

* the gate, applied with the counts, side regression and text of the state before;
* popularity (counts before);
* trending: counts in a recent window before the cut (each window of :data:`WINDOWS_DAYS` tried;
  the best kept where it beats popularity by :data:`TRENDING_SE` standard errors of the judges'
  paired differences), all-time counts breaking ties.

Where a prior scores higher, zero-history users are ranked by it (recomputed on the whole training
data at the end of the fit); ``chosen()`` records every figure.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import bucket_of
from hybrid.data.interactions import Interactions
from hybrid.fusion.gate import fuse
from hybrid.fusion.signals import SignalSet, standardise
from hybrid.fusion.trend import WINDOWS_DAYS, recent_counts
from hybrid.fusion.user_side import SideRegression
from hybrid.metrics import hit_matrix, per_user_metrics

logger = logging.getLogger(__name__)

LATE_QUANTILES = (0.9, 0.8, 0.7, 0.5)  # the cut, tried latest first until enough users arrive after it
MIN_JUDGES = 20
MAX_JUDGES = 500
BATCH = 128  # judges scored at once (signals of a batch: BATCH x n_items x the signals)
RANDOM_SHARE = 0.2  # without time: the share of non-rehearsal users that judge
TRENDING_SE = 1.0  # the one-standard-error rule: the simpler prior unless the other is clearly better
K = 20


@dataclasses.dataclass
class ZeroHistoryPrior:
    """What ranks zero-history users: ``kind`` "gate" (the new-user gate), "popularity" or
    "trending" (``window_days``), with ``scores`` float32 [n_items] for a prior and ``record`` the
    figures it was chosen on."""

    kind: str = "gate"
    window_days: float | None = None
    scores: torch.Tensor | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=dict)


def prior_scores(data: Interactions, kind: str, window_days: float | None) -> torch.Tensor:
    """float32 [n_items]: popularity, or counts in the last ``window_days`` of ``data`` (all-time
    counts below one recent interaction break ties); trending without times is popularity."""
    total = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
    recent = None if kind == "popularity" else recent_counts(data, window_days)
    scores = total if recent is None else recent + total / (total.max() + 1.0)
    return torch.as_tensor(scores, dtype=torch.float32)


def judges_and_state(data: Interactions, excluded: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(judge user indices, bool [nnz] rows of the state before them, how they were chosen)."""
    rng = np.random.default_rng(seed + 7)
    if data.timestamps is not None:
        first = np.full(data.n_users, np.iinfo(np.int64).max)
        np.minimum.at(first, data.users, data.timestamps)
        for q in LATE_QUANTILES:
            cut = np.quantile(data.timestamps, q)
            judges = np.setdiff1d(np.flatnonzero((first >= cut) & (first < np.iinfo(np.int64).max)), excluded)
            if len(judges) >= MIN_JUDGES:
                judges = np.sort(rng.choice(judges, min(len(judges), MAX_JUDGES), replace=False))
                return judges, data.timestamps < cut, f"users first seen in the last {1 - q:.0%} of the training time"
    active = np.setdiff1d(np.flatnonzero(np.bincount(data.users, minlength=data.n_users) > 0), excluded)
    n = min(MAX_JUDGES, max(MIN_JUDGES, round(RANDOM_SHARE * len(active))), len(active))
    judges = np.sort(rng.choice(active, n, replace=False)) if n else active
    return judges, ~np.isin(data.users, judges), "a seeded share of users left out of the rehearsal"


def list_score(tops: list[np.ndarray], targets: sp.csr_matrix) -> np.ndarray:
    """float64 [judges]: each judge's Recall@K + NDCG@K of the lists ``tops`` (int64 [b, K] per
    batch, in the rows' order) against ``targets`` (nothing masked: a zero-history user has
    nothing to mask)."""
    top = torch.as_tensor(np.concatenate(tops))
    hits = hit_matrix(top, targets)
    values = per_user_metrics(hits, torch.as_tensor(np.diff(targets.tocsr().indptr)), top.shape[1])
    return (values["recall"] + values["ndcg"]).numpy()


def beats(better: np.ndarray, base: np.ndarray) -> float:
    """How many standard errors ``better``'s mean is above ``base``'s, user by user (the paired
    difference's mean over its standard error; 0 where they never differ)."""
    diff = better - base
    spread = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return float(diff.mean() / spread) if spread > 0 else 0.0


def top_of(scores: torch.Tensor) -> np.ndarray:
    return torch.topk(scores, min(K, scores.shape[-1]), dim=-1).indices.cpu().numpy()


def same_list(scores: torch.Tensor, n: int) -> list[np.ndarray]:
    """One list, every judge's: ``scores`` float32 [n_items] ranked once."""
    return [np.tile(top_of(scores), (n, 1))]


def choose_zero_history_prior(model: Any, path: Any, train: Interactions, excluded: np.ndarray,
                              seed: int) -> ZeroHistoryPrior:
    """Judge the zero-history gate of ``path`` against popularity and trending (module docstring).

    Args:
        model: the fitted hybrid (text vectors, neighbours, device, text profiles).
        path: its :class:`~hybrid.fusion.new_users.NewUserPath`, gates fitted.
        train: every training interaction (train + validation).
        excluded: the rehearsal's users (the gate was fitted on them).
    """
    gate = path.gates.get("0")
    if gate is None or not len(train):
        return ZeroHistoryPrior(record={"skipped": "no zero-history gate"})
    judges, before, how = judges_and_state(train, excluded, seed)
    if len(judges) < MIN_JUDGES:
        return ZeroHistoryPrior(record={"skipped": f"{len(judges)} judging users"})
    state = Interactions(train.user_ids, train.item_ids, train.users[before], train.items[before],
                         train.weights[before], None if train.timestamps is None else train.timestamps[before])
    targets = (train.matrix() > 0).astype(np.float32).tocsr()[judges]
    per_user = {"gate": gate_score(model, path, gate, state, judges, targets, seed),
                "popularity": list_score(same_list(prior_scores(state, "popularity", None), len(judges)), targets)}
    if state.timestamps is not None:
        for days in WINDOWS_DAYS:
            scores = prior_scores(state, "trending", days)
            per_user[f"trending {days:g}d"] = list_score(same_list(scores, len(judges)), targets)
    figures = {name: round(float(values.mean()), 4) for name, values in per_user.items()}
    # Trending must beat popularity by TRENDING_SE standard errors of the judges' paired
    # differences: seven windows tried on a few dozen users would otherwise often pick one by chance.
    trending = max((n for n in figures if n.startswith("trending")), key=figures.__getitem__, default=None)
    lead = beats(per_user[trending], per_user["popularity"]) if trending else 0.0
    best = trending if trending and lead > TRENDING_SE else "popularity"
    record = {"judged on": f"{len(judges)} {how}", f"recall@{K} + ndcg@{K}": figures,
              **({f"{trending} over popularity (standard errors)": round(lead, 2)} if trending else {})}
    if figures["gate"] >= figures[best]:
        record["zero-history users ranked by"] = "gate"
        logger.info("hybrid: zero-history gate kept (%s)", record)
        return ZeroHistoryPrior(record=record)
    kind, window = ("popularity", None) if best == "popularity" else ("trending", float(best.split()[1][:-1]))
    record["zero-history users ranked by"] = best
    logger.info("hybrid: zero-history users ranked by %s, not the gate (%s)", best, record)
    return ZeroHistoryPrior(kind, window, prior_scores(train, kind, window).to(model.device_), record)


def gate_score(model: Any, path: Any, gate: tuple[torch.Tensor, torch.Tensor], state: Interactions,
               judges: np.ndarray, targets: sp.csr_matrix, seed: int) -> np.ndarray:
    """:func:`list_score` of the zero-history gate's lists for ``judges``, every signal read from
    ``state`` (the side regression refitted on it)."""
    device = model.device_
    counts = np.bincount(state.items, minlength=state.n_items)
    builder = SignalSet(model.text_, model.neighbours_, counts, device, recent_counts(state, model.trend_days_))
    buckets = torch.as_tensor(bucket_of(counts), device=device)
    empty = sp.csr_matrix((len(judges), state.n_items), dtype=np.float32)
    side = None
    rows = (state.matrix() > 0).astype(np.float32).tocsr()
    users = np.flatnonzero(rows.getnnz(axis=1) > 0)
    if path.user_vectors is not None and len(users) >= MIN_JUDGES:
        side = SideRegression().fit(path.user_vectors[torch.as_tensor(users, device=device)], rows[users], seed)
    tops = []
    with torch.no_grad():
        for start in range(0, len(judges), BATCH):
            users, none = judges[start:start + BATCH], empty[start:start + BATCH]
            graph = torch.zeros(len(users), state.n_items, device=device)
            signals = builder.signals(graph, none, model.text_profiles(users, none, builder, path.user_vectors))
            features = path.features(users, None, device)
            side_signal = torch.zeros_like(graph) if side is None or features is None else standardise(side.score(features))
            tops.append(top_of(fuse([*signals[:-1], side_signal, signals[-1]], gate[0], gate[1], buckets)))
    return list_score(tops, targets)
