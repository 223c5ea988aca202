"""Top-K ranking metrics, as pure functions of a hit matrix, and the top-K helpers fitting needs.

Below the models (STYLE 17): a model's validation (:mod:`hybrid.models.bpr`), the hybrid's
rehearsal (:mod:`hybrid.fusion`) and the evaluation (:mod:`hybrid.evaluation`) all rank and score
with these, and this module imports nothing of theirs.

Definitions, for one user with test set T and top-K list L (``tests/test_metrics.py`` checks each
against values worked out by hand):
    Recall@K    = |L ∩ T| / |T|
    Precision@K = |L ∩ T| / K
    NDCG@K      = Σ_{r ≤ K, L_r ∈ T} 1/log2(r+1)  /  Σ_{r ≤ min(|T|, K)} 1/log2(r+1)
    MRR@K       = 1 / rank of the first hit in L (0 when none)
    HitRate@K   = 1 if any hit else 0
Each is averaged over users with at least one test item. Groups (warm/cold items, count buckets)
reuse the same functions with T restricted to the group while L stays the full ranking, so cold
and warm items compete in one list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

METRICS = ("recall", "precision", "ndcg", "mrr", "hit_rate")


def hit_matrix(top: torch.Tensor, relevant: sp.csr_matrix) -> torch.Tensor:
    """bool [n, K]: whether ``top[r, j]`` is in row r of ``relevant``.

    Args:
        top: int64 [n, K] ranked item indices per user.
        relevant: CSR [n, n_items], row r = that user's test items.
    """
    relevant = relevant.tocsr()
    relevant.sort_indices()
    n, n_items = relevant.shape
    device = top.device
    counts = torch.as_tensor(np.diff(relevant.indptr), dtype=torch.int64, device=device)
    rows = torch.repeat_interleave(torch.arange(n, device=device), counts)
    keys = rows * n_items + torch.as_tensor(relevant.indices, dtype=torch.int64, device=device)
    if len(keys) == 0:
        return torch.zeros_like(top, dtype=torch.bool)
    query = torch.arange(n, device=device).unsqueeze(1) * n_items + top
    pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    return keys[pos] == query


def metrics_from_hits(hits: torch.Tensor, n_relevant: torch.Tensor, ks: Sequence[int],
                      bootstrap: int = 0, seed: int = 0) -> dict[str, float]:
    """Mean metrics over users with ``n_relevant > 0``.

    Args:
        hits: bool [n, K_max] from :func:`hit_matrix`.
        n_relevant: int [n] size of each user's test set.
        ks: cut-offs, each ≤ K_max.
        bootstrap: with B > 0, also ``<metric>_lo`` / ``<metric>_hi``: the 2.5% and 97.5%
            quantiles of the mean over B seeded resamples of the users (a percentile bootstrap
            95% interval: how much the mean owes to which users were sampled).
    """
    out: dict[str, float] = {}
    if not bool((n_relevant > 0).any()):
        return {f"{m}@{k}": float("nan") for k in ks for m in METRICS}
    if max(ks) > hits.shape[1]:
        raise ValueError(f"k={max(ks)} is larger than the {hits.shape[1]} ranked items given")
    for k in ks:
        for name, values in per_user_metrics(hits, n_relevant, k).items():
            out[f"{name}@{k}"] = float(values.mean())
            if bootstrap:
                low, high = bootstrap_interval(values, bootstrap, seed)
                out[f"{name}@{k}_lo"], out[f"{name}@{k}_hi"] = low, high
    out["users"] = int((n_relevant > 0).sum())
    return out


def per_user_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Each metric at ``k`` per user with ``n_relevant > 0`` (float64 [n'] each, in row order);
    ``hits``, ``n_relevant`` as :func:`metrics_from_hits`: what paired comparisons read."""
    keep = n_relevant > 0
    hits, n_rel = hits[keep].double(), n_relevant[keep].double()
    discounts = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float64, device=hits.device))
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float64, device=hits.device)
    h = hits[:, :k]
    n_hits = h.sum(1)
    dcg = (h * discounts[:k]).sum(1)
    idcg = torch.cumsum(discounts, 0)[(torch.clamp(n_rel, max=k) - 1).long()]
    first = torch.where(h.any(1), 1.0 / ranks[h.float().argmax(1)], torch.zeros_like(n_hits))
    return {"recall": n_hits / n_rel, "precision": n_hits / k, "ndcg": dcg / idcg, "mrr": first,
            "hit_rate": (n_hits > 0).double()}


def bootstrap_interval(values: torch.Tensor, resamples: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap 95% interval of the mean of ``values`` (float [n])."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(values), (resamples, len(values)), generator=generator)
    means = values.cpu()[picks].mean(1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=means.dtype)).tolist()
    return low, high


def ranking_metrics(top: np.ndarray | torch.Tensor, relevant: sp.csr_matrix, ks: Sequence[int],
                    bootstrap: int = 0, seed: int = 0) -> dict[str, float]:
    """Metrics of ranked lists ``top`` [n, K] against test items ``relevant`` (CSR [n, n_items])
    (``bootstrap``: intervals, see :func:`metrics_from_hits`)."""
    top_t = torch.as_tensor(np.asarray(top), dtype=torch.int64)
    hits = hit_matrix(top_t, relevant)
    n_rel = torch.as_tensor(np.diff(relevant.indptr), dtype=torch.int64)
    return metrics_from_hits(hits, n_rel, ks, bootstrap, seed)


def padded_metrics(top: np.ndarray, relevant: sp.csr_matrix, ks: Sequence[int]) -> dict[str, float]:
    """:func:`ranking_metrics` of lists that may end in -1 (no item, never a hit)."""
    top_t = torch.as_tensor(np.asarray(top), dtype=torch.int64)
    hits = hit_matrix(top_t.clamp(min=0), relevant) & (top_t >= 0)
    return metrics_from_hits(hits, torch.as_tensor(np.diff(relevant.indptr), dtype=torch.int64), ks)


def recall_at(top: np.ndarray, relevant: sp.csr_matrix, digits: int | None = 4, padded: bool = False) -> float:
    """Mean Recall at the lists' length K over the rows of ``relevant`` that hold an item: the one
    recall of the validation figures that fitting chooses by and records.

    Args:
        top: int [n, K] ranked item indices per row.
        relevant: CSR [n, n_items] each row's relevant items.
        digits: rounded to this many places (the record's figure); None: not rounded.
        padded: -1 in ``top`` ends a list shorter than K (:func:`padded_metrics`).
    """
    k = top.shape[1]
    metrics = padded_metrics(top, relevant, [k]) if padded else ranking_metrics(top, relevant, [k])
    recall = metrics[f"recall@{k}"]
    return recall if digits is None else round(recall, digits)


def restrict_columns(relevant: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``relevant`` with only the item columns where bool ``keep`` [n_items] is True."""
    mask = sp.diags(keep.astype(np.float32))
    out = (relevant @ mask).tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def mask_history(scores: torch.Tensor, history: sp.csr_matrix) -> torch.Tensor:
    """Set the scores of each row's history items to -inf, in place.

    Args:
        scores: float [b, n_items].
        history: CSR [b, n_items] aligned with ``scores`` rows.
    """
    counts = torch.as_tensor(np.diff(history.indptr), dtype=torch.int64, device=scores.device)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=scores.device), counts)
    cols = torch.as_tensor(history.indices, dtype=torch.int64, device=scores.device)
    scores[rows, cols] = -torch.inf
    return scores


def top_unknown(scores: torch.Tensor, known: torch.Tensor, k: int = 20) -> np.ndarray:
    """int64 [b, min(k, n_items)] the best items of each row that bool ``known`` [b, n_items] leaves out."""
    return torch.topk(scores.masked_fill(known, -torch.inf), min(k, scores.shape[1]), dim=1).indices.cpu().numpy()
