"""Fusing an LLM's candidate scores with the retriever's, by a weight chosen on rehearsed new users.

The LLM never replaces the retriever's order outright: within a user's top candidates the fused
score is ``(1 - w) · z(retriever) + w · z(LLM)``, each standardised over the candidates (so a
log-probability and a dot product are commensurable). ``w = 0`` is the retriever exactly (the LLM
is not even called), ``w = 1`` the LLM's own order.

``w`` is chosen on a rehearsal, never on the test users: a seeded sample of training users is
removed from the retriever's fit data entirely (they become new users to it), each reveals none
or a few of their earliest items (uniformly up to the reranker's ``max_history``), and the weight
that ranks the rest of their items best (NDCG@n + Recall@n/2 over the reordered top n) wins, ties
going to the smaller weight. Because ``w = 0`` is in the grid, the fused list is never below the
retriever's on this rehearsal, by construction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from hybrid.data.interactions import merged
from hybrid.fusion.rehearsal import earliest, first_items, subset
from hybrid.metrics import mask_history, ranking_metrics
from hybrid.models.base import FitData, make_model

logger = logging.getLogger(__name__)


class Rehearsed(Protocol):
    """The reranker's settings the rehearsal reads (:class:`hybrid.llm.rerank_model.RerankConfig`)."""

    retriever: str
    retriever_params: dict[str, Any]
    max_history: int
    top_n: int


def progress(rows: np.ndarray) -> Iterable[int]:
    """``rows`` with a progress bar and ETA over the batch's users (only on a terminal: tqdm's own
    check, so a log file gets no bar lines)."""
    return tqdm(rows, desc="LLM rerank", unit="user", disable=None, leave=False)

MIN_REHEARSAL_USERS = 10  # fewer eligible users than this: weight 0 (the retriever), logged


def zscore(values: torch.Tensor) -> torch.Tensor:
    """``values`` [m] standardised (zero where they are all equal)."""
    spread = values.std(unbiased=False)
    centred = values - values.mean()
    return centred / spread if spread > 0 else torch.zeros_like(values)


def fused_order(retriever: torch.Tensor, llm: torch.Tensor, weight: float) -> torch.Tensor:
    """Candidate positions [m], best first, by ``(1 - weight) · z(retriever) + weight · z(llm)``;
    ties keep the retriever's order (``retriever`` [m] is given best first; a -inf among them, an
    item the retriever rules out, ranks below its finite scores)."""
    finite = torch.isfinite(retriever)
    if not finite.all():
        floor = retriever[finite].min() - 1 if finite.any() else torch.zeros((), dtype=retriever.dtype)
        retriever = torch.where(finite, retriever, floor)
    fused = (1 - weight) * zscore(retriever.double()) + weight * zscore(llm.double())
    return torch.argsort(fused, descending=True, stable=True)


def choose_weight(config: Rehearsed, data: FitData, llm_scores: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                  weights: Sequence[float], n_users: int) -> tuple[float, dict[str, Any]]:
    """The reranker's fusion weight chosen on rehearsed new users (see the module docstring).

    Args:
        config: the reranker's settings (the retriever and its parameters, top_n, max_history).
        data: the fit data; rehearsal users come from ``data.train`` (and ``data.valid``).
        llm_scores: ``(user, known items, candidates) -> float [m]`` LLM scores of the candidates.
        weights: the grid; must contain 0.
        n_users: rehearsal users to draw.

    Returns:
        ``(weight, record)``: the chosen weight and what the rehearsal measured, for ``chosen()``.
    """
    everything = merged(data.train, data.valid)
    eligible = np.flatnonzero(everything.user_counts() > config.max_history)
    if len(eligible) < MIN_REHEARSAL_USERS:
        logger.info("llm: %d users with %d+ interactions, too few to rehearse; fusion weight 0 (the retriever)",
                    len(eligible), config.max_history + 1)
        return 0.0, {"skipped": f"{len(eligible)} eligible users"}
    rng = np.random.default_rng(data.seed + 2)
    users = np.sort(rng.choice(eligible, min(n_users, len(eligible)), replace=False))
    held = np.isin(data.train.users, users)
    valid = None if data.valid is None else subset(data.valid, ~np.isin(data.valid.users, users))
    rehearsal = make_model(config.retriever, config.retriever_params).fit(
        dataclasses.replace(data, train=subset(data.train, ~held), valid=valid))

    reveal = rng.integers(0, config.max_history + 1, len(users))
    revealed = first_items(earliest(everything, users), reveal, everything.n_items)
    positives = ((everything.matrix()[users] - revealed) > 0).astype(np.float32).tocsr()
    scores = mask_history(rehearsal.score(users, revealed).float(), revealed)
    n = min(config.top_n, scores.shape[1])
    top = torch.topk(scores, n, dim=1)
    llm = [torch.as_tensor(llm_scores(int(u), revealed.indices[revealed.indptr[r]:revealed.indptr[r + 1]],
                                      top.indices[r].cpu().numpy()))
           for r, u in enumerate(progress(np.asarray(users)))]
    objective, record = {}, {}
    for w in weights:
        lists = np.stack([top.indices[r][fused_order(top.values[r], llm[r], w)].cpu().numpy() for r in range(len(users))])
        metrics = ranking_metrics(lists, positives, [n // 2 or 1, n])
        objective[w] = metrics[f"ndcg@{n}"] + metrics[f"recall@{n // 2 or 1}"]
        record[f"{w:g}"] = {key: round(metrics[key], 4) for key in (f"recall@{n // 2 or 1}", f"ndcg@{n}")}
    best = max(weights, key=lambda w: (round(objective[w], 10), -w))
    logger.info("llm: fusion weight %g chosen on %d rehearsed new users: %s", best, len(users), record)
    return float(best), {"rehearsal users": len(users), "by weight": record}

