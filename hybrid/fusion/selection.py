"""What the hybrid chooses on its rehearsal: the graph half, and the item gate with its sparse weight.

Every choice is made on rehearsal users the chosen part was not fitted on (honest selection):
the gate is fitted on one part of the rehearsal users and ``sparse_weight`` chosen, and every
validation figure measured, on the others (``SELECTION_SHARE``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import bucket_of
from hybrid.fusion.columns import (
    ColumnBatch,
    ColumnState,
    column_batches,
    column_examples,
    column_tops,
    pair_fuse,
)
from hybrid.fusion.config import FusionConfig
from hybrid.fusion.gate import Gate, GateExamples, fit_gate, fuse, gate_examples
from hybrid.fusion.halves import auto_halves
from hybrid.fusion.rehearsal import ColdValidation
from hybrid.fusion.signals import FEATURES, SignalBatches, SignalSet
from hybrid.fusion.trend import recent_counts
from hybrid.metrics import recall_at, restrict_columns, top_unknown
from hybrid.models.base import FitData, Recommender, make_model
from hybrid.profiling import StageProfile
from hybrid.retrieval.ann import AnnIndex

logger = logging.getLogger(__name__)

SPARSE_GRID = (1.0, 2.0, 4.0, 8.0)
SELECTION_SHARE = 0.25  # of the rehearsal users: held out of the gate's fit, sparse_weight chosen on them


def validation_users(positives: sp.csr_matrix, history: sp.csr_matrix, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Users with history and a validation positive, a seeded sample of at most ``limit``."""
    users = np.flatnonzero((np.diff(positives.indptr) > 0) & (np.diff(history.indptr) > 0))
    if len(users) > limit:
        users = np.sort(rng.choice(users, limit, replace=False))
    return users


def choose_graph_half(config: FusionConfig, split: ColdValidation, data: FitData, profile: StageProfile,
                      ) -> tuple[str, Recommender, dict[str, float]]:
    """The graph half: ``warm_model``, or with "auto" the half of :func:`auto_halves` that ranks
    the rehearsal's warm positives best among warm items; each fitted on the rehearsal graph."""
    names = [config.warm_model] if config.warm_model != "auto" else auto_halves(config.auto_warm, data.train.n_items)
    fit_data = dataclasses.replace(data, train=split.fit, valid=None)
    if len(names) == 1:
        with profile.stage(f"graph half: {names[0]}"):
            return names[0], make_model(names[0], config.warm_params_of(names[0])).fit(fit_data), {}
    history = split.fit.matrix()
    warm_items = (split.fit.item_counts() > 0) & ~split.pseudo_new
    positives = restrict_columns(split.positives, warm_items)
    users = validation_users(positives, history, config.rehearsal_users(history.shape[1]), np.random.default_rng(data.seed))
    excluded = torch.as_tensor(~warm_items, device=data.device)
    models, recall = {}, {}
    for name in names:
        with profile.stage(f"graph half: {name}"):
            models[name] = model = make_model(name, {}).fit(fit_data)
            tops = []
            with torch.no_grad():
                for start in range(0, len(users), config.batch_size):
                    batch = users[start:start + config.batch_size]
                    scores = model.score(batch, history[batch]).masked_fill(excluded, -torch.inf)
                    tops.append(top_unknown(scores, torch.as_tensor((history[batch] > 0).toarray(), device=data.device)))
            recall[name] = recall_at(np.concatenate(tops), positives[users])
    best = max(names, key=lambda n: recall[n])
    logger.info("hybrid: warm-only validation Recall@20 by graph half %s -> %s", recall, best)
    return best, models[best], recall


def warm_signals(warm: Recommender, builder: SignalSet, buckets: torch.Tensor, history: sp.csr_matrix,
                 users: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, list[torch.Tensor], torch.Tensor]]:
    """(user batch, its signals, its known items as bool [b, n_items]) for rehearsal ``users``,
    the graph half's scores of new items (bucket 0) set to 0 as at scoring time."""
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        rows = history[batch]
        graph = warm.score(batch, rows)
        graph[:, buckets == 0] = 0
        yield batch, builder.signals(graph, rows), torch.as_tensor((rows > 0).toarray(), device=graph.device)


def validation_recall(gate: Gate, batches: Iterable[tuple[np.ndarray, list[torch.Tensor], torch.Tensor]],
                      buckets: torch.Tensor, relevant: sp.csr_matrix) -> dict[str, float]:
    """Full-ranking validation Recall@20 of the fused score and of each signal alone: what the
    gate gains over its best input, on the rehearsal, for the record. ``batches``: from
    :func:`warm_signals`; ``relevant``: CSR [n, n_items] the positives of its users, in order."""
    names = ("hybrid", "graph", "profile", "text_knn", "text_graph", "hybrid warm_only", "graph warm_only")
    new = buckets == 0
    tops: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with torch.no_grad():
        for _, signals, known in batches:
            fused = fuse(signals, gate.weight, gate.bias, buckets)
            ranked = (("hybrid", fused), *zip(names[1:5], signals, strict=False),
                      ("hybrid warm_only", fused.masked_fill(new, -torch.inf)),
                      ("graph warm_only", signals[0].masked_fill(new, -torch.inf)))
            for name, scores in ranked:
                tops[name].append(top_unknown(scores, known))
    new_np = new.cpu().numpy()
    sparse_rel = restrict_columns(relevant, ((buckets == 1) | (buckets == 2)).cpu().numpy())
    position = np.full(len(new_np), -1)
    position[~new_np] = np.arange(int((~new_np).sum()))
    out = {}
    for name, parts in tops.items():
        top = np.concatenate(parts)
        if name.endswith("warm_only"):  # the warm-only metric over warm columns only
            out[name] = recall_at(position[top], relevant[:, ~new_np], padded=True)
        else:
            out[name] = recall_at(top, relevant)
        if name in ("hybrid", "graph", "profile"):  # the one list scored on items with 1–19 interactions
            out[f"{name} 1-19"] = recall_at(top, sparse_rel)
    return out


def column_validation_recall(gate: Gate, batches: Iterable[ColumnBatch], buckets: torch.Tensor,
                             relevant: sp.csr_matrix) -> dict[str, float]:
    """:func:`validation_recall` on candidate columns (:mod:`hybrid.fusion.columns`): each list
    ranks the user's candidates, an item outside them taken to rank below."""
    new = buckets == 0
    lists: dict[str, Callable[[ColumnBatch], torch.Tensor]] = {
        "hybrid": lambda b: pair_fuse(b, gate.weight, gate.bias, buckets),
        **{name: (lambda b, f=f: b.signals[f]) for f, name in enumerate(("graph", "profile", "text_knn", "text_graph"))}}
    lists["hybrid warm_only"], lists["graph warm_only"] = lists["hybrid"], lists["graph"]
    tops = column_tops(batches, lists, keep=lambda b: ~new[torch.as_tensor(np.maximum(b.cand, 0), device=new.device)],
                       kept=("hybrid warm_only", "graph warm_only"))
    sparse_rel = restrict_columns(relevant, ((buckets == 1) | (buckets == 2)).cpu().numpy())
    warm_rel = restrict_columns(relevant, ~new.cpu().numpy())
    out = {}
    for name, top in tops.items():
        out[name] = recall_at(top, warm_rel if name.endswith("warm_only") else relevant, padded=True)
        if name in ("hybrid", "graph", "profile"):
            out[f"{name} 1-19"] = recall_at(top, sparse_rel, padded=True)
    return out


@dataclasses.dataclass
class RehearsalState:
    """One rehearsal's state as the item gate reads it: its signals, count buckets and history, and
    on a catalogue past ``column_items`` its candidate finders (:mod:`hybrid.fusion.columns`)."""

    split: ColdValidation
    warm: Recommender
    builder: SignalSet
    buckets: torch.Tensor
    history: sp.csr_matrix
    columns: ColumnState | None = None

    @classmethod
    def of(cls, split: ColdValidation, warm: Recommender, text: torch.Tensor, neighbours: sp.csr_matrix,
           trend_days: float | None, texts: AnnIndex | None = None, n_top: int = 0) -> RehearsalState:
        counts = split.fit.item_counts()
        builder = SignalSet(text, neighbours, counts, text.device, recent_counts(split.fit, trend_days))
        buckets = torch.as_tensor(bucket_of(counts), device=text.device)
        columns = None if texts is None else ColumnState.of(builder, warm, buckets, texts, n_top)
        return cls(split, warm, builder, buckets, split.fit.matrix(), columns)

    def batches(self, users: np.ndarray, config: FusionConfig, seed: int) -> SignalBatches:
        """The signals of rehearsal ``users`` for the passes that read them: full rows
        (:func:`warm_signals`), or their candidate columns."""
        if self.columns is None:
            return SignalBatches(partial(warm_signals, self.warm, self.builder, self.buckets, self.history, users,
                                         config.batch_size), len(users) * self.history.shape[1] * len(FEATURES))
        make = partial(column_batches, self.columns, users, self.history[users], self.split.positives[users],
                       lambda _, rows: self.builder.profile_vectors(rows), config.batch_size, seed,
                       config.candidates, config.random_negatives)
        return SignalBatches(make, len(users) * config.columns_per_user() * len(FEATURES))

    def examples(self, users: np.ndarray, config: FusionConfig, rng: np.random.Generator) -> GateExamples:
        """The gate's examples of rehearsal ``users`` (:func:`~hybrid.fusion.gate.gate_examples`)."""
        new_items = torch.as_tensor(self.split.pseudo_new, device=self.buckets.device)
        if self.columns is not None:
            return column_examples(self.batches(users, config, int(rng.integers(2**31))), new_items, self.buckets,
                                   rng, config.max_positives)
        fitting = warm_signals(self.warm, self.builder, self.buckets, self.history, users, config.batch_size)
        return gate_examples(((signals, known, self.split.positives[batch]) for batch, signals, known in fitting),
                             new_items, self.buckets, rng, config.candidates, config.random_negatives,
                             config.max_positives)


def pooled_examples(config: FusionConfig, state: RehearsalState, users: np.ndarray,
                    earlier: Sequence[Callable[[], RehearsalState]], rng: np.random.Generator,
                    ) -> tuple[GateExamples, torch.Tensor, list[dict[str, Any]]]:
    """The examples of ``users`` of the rehearsal and of the earlier cuts' users, stacked, and
    each example's new-item weight (each cut's new items at its own natural share); what each
    earlier cut gave. The earlier cuts together hold at most as many users as the rehearsal (a
    seeded sample): the period nearest the future keeps at least half the fit, and the cost at
    most doubles. The choices are made on the rehearsal's selection users alone. Each cut's
    state is made by its ``earlier`` callable and dropped once its examples are: past
    ``column_items`` a state holds factor tables and indexes of the whole catalogue."""
    parts = [(state.examples(users, config, rng), config.new_weight * state.split.new_weight)]
    record = []
    per_cut = -(-len(users) // max(1, len(earlier)))
    for make in earlier:
        cut = make()
        cut_users = validation_users(cut.split.positives, cut.history, per_cut, rng)
        if len(cut_users):
            parts.append((cut.examples(cut_users, config, rng), config.new_weight * cut.split.new_weight))
            record.append({"users": len(cut_users), "new_weight": round(parts[-1][1], 6)})
        del cut  # before the next cut's state is made
    examples = GateExamples.stacked([p for p, _ in parts])
    new_weight = torch.cat([torch.full((p.labels.shape[0], 1), w, device=p.labels.device) for p, w in parts])
    return examples, new_weight, record


def fit_item_gate(config: FusionConfig, warm: Recommender, split: ColdValidation, text: torch.Tensor,
                  neighbours: sp.csr_matrix, seed: int, trend_days: float | None = None,
                  earlier: Sequence[tuple[ColdValidation, Recommender]] = (),
                  texts: AnnIndex | None = None) -> tuple[Gate, dict[str, Any]]:
    """The item gate fitted on the rehearsal (see :mod:`hybrid.fusion.model`) and on the ``earlier``
    cuts' rehearsals with their graph halves (:func:`~hybrid.fusion.rehearsal.earlier_rehearsals`),
    ``sparse_weight`` chosen on the selection users, and what it measured; ``trend_days``: the
    trending window; ``texts``: the text index, where the rehearsal reads candidate columns."""
    state = RehearsalState.of(split, warm, text, neighbours, trend_days, texts, config.candidates)
    buckets, history = state.buckets, state.history
    rng = np.random.default_rng(seed)
    users = validation_users(split.positives, history, config.rehearsal_users(history.shape[1]), rng)
    if len(users) < 2:
        raise ValueError("hybrid: fewer than 2 users have both training history and a validation item; too little data")
    held = np.zeros(len(users), bool)
    held[rng.choice(len(users), max(1, round(SELECTION_SHARE * len(users))), replace=False)] = True
    users, select = users[~held], users[held]
    cuts = [partial(RehearsalState.of, cut, cut_warm, text, neighbours, trend_days, texts, config.candidates)
            for cut, cut_warm in earlier]
    examples, new_weight, earlier_record = pooled_examples(config, state, users, cuts, rng)
    is_sparse = (examples.buckets == 1) | (examples.buckets == 2)

    def fit(sparse_weight: float, init: Gate | None) -> tuple[Gate, float]:
        weights = torch.where(examples.new, new_weight, torch.where(is_sparse, sparse_weight, 1.0))
        return fit_gate(examples, weights, config.reg, config.bucket_reg, config.steps, init=init)

    # sparse_weight None: the smallest weight of SPARSE_GRID whose fused list serves items with
    # 1–19 interactions at least as well as the graph and the text profile alone, on the selection
    # users (no weight does: the one-list objective, weight 1, and a log line).
    selection = state.batches(select, config, seed)
    recall_of = validation_recall if state.columns is None else column_validation_recall
    grid = SPARSE_GRID if config.sparse_weight is None else (config.sparse_weight,)
    tried: dict[float, dict[str, float]] = {}
    fitted: dict[float, tuple[Gate, float]] = {}
    choice, gate = None, None
    for weight in grid:  # each gate starts from the previous one (convex: the same optimum, fewer steps)
        gate, loss = fitted[weight] = fit(weight, gate)
        recall = tried[weight] = recall_of(gate, selection, buckets, split.positives[select])
        if config.sparse_weight is not None or recall["hybrid 1-19"] >= max(recall["graph 1-19"], recall["profile 1-19"]):
            choice = weight
            break
    if choice is None:
        logger.info("hybrid: no sparse_weight of %s serves items with 1-19 interactions as well as the graph or "
                    "the text profile on validation; keeping the one-list objective (1)", list(grid))
        choice = 1.0
    gate, loss = fitted[choice]
    info = {
        "users": len(users), "selection users": len(select), "pseudo_new_items": int(split.pseudo_new.sum()),
        "rehearsal columns": "full rows" if state.columns is None else "candidates",
        "loss": round(loss, 4),
        "sparse_weight": choice, "new_weight": round(config.new_weight * split.new_weight, 6),
        "earlier cuts": earlier_record,
        "valid_recall@20": tried[choice],
        "valid_recall@20 by sparse_weight": {str(w): r["hybrid"] for w, r in tried.items()},
        "valid_recall@20 on 1-19 by sparse_weight": {str(w): r["hybrid 1-19"] for w, r in tried.items()},
        "weights": {f: [round(v, 4) for v in row] for f, row in zip(FEATURES, gate.weight.tolist(), strict=True)},
        "bias": [round(v, 4) for v in gate.bias.tolist()],
    }
    logger.info("hybrid: gate fitted on %d validation users: %s", len(users), info)
    return gate, info
