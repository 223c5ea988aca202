"""Cells and targets of the cold-start tables: what docs/results.md and the README summary judge.

Every figure comes from ``benchmarks/results/cold_start.json``; :mod:`render_results` lays the
document out, this module formats cells and judges the targets of issues 32 and 33:
a replay (time-true, all user-steps) and a single-cut temporal split are judged by the one list
against 1.05 × the best peer, zero-history users against the better of popularity and trending,
users with 1–4 earlier interactions against the best peer, and test items with 1–4 and 5–19
interactions against the best of content kNN, LightGCN and GF-CF; a random cold-item split by the
one list above every peer, new among new and warm among warm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HYBRID = "hybrid"
BUCKETS_SHOWN = ("1-4", "5-19")  # keys of results' "buckets"
LABEL = {"1-4": "1–4", "5-19": "5–19"}
WARM_SHARE = 0.98  # warm_only target: the hybrid keeps at least this share of the best graph model


# --------------------------------------------------------------------------------------------- cells


def number(metrics: dict[str, Any] | None, key: str) -> float | None:
    """``metrics[key]`` as a float, or None when absent, null or NaN (nothing to compare)."""
    if not metrics:
        return None
    value = metrics.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def cell(metrics: dict[str, Any] | None, key: str) -> str:
    """``metrics[key]`` to 4 decimals, with ``± <key>_std`` when the JSON has a finite one and the
    bootstrap interval ``[lo, hi]`` when it has one; — if absent."""
    value = number(metrics, key)
    if value is None:
        return "—"
    std = number(metrics, f"{key}_std")
    text = f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"
    low, high = number(metrics, f"{key}_lo"), number(metrics, f"{key}_hi")
    return text if low is None or high is None else f"{text} [{low:.4f}, {high:.4f}]"


def pair(metrics: dict[str, Any] | None, k: int) -> str:
    """Recall and NDCG at ``k`` of one group, as "R / N"; — when the group is absent."""
    if not metrics:
        return "—"
    return f"{cell(metrics, f'recall@{k}')} / {cell(metrics, f'ndcg@{k}')}"


def k_of(entry: dict[str, Any]) -> int:
    """The cut-off the tables use: the largest K the data set was scored at (20 by default)."""
    return max(entry.get("k") or [20])


def users_text(n: Any) -> str:
    """A user count; a mean over seeds may be fractional."""
    n = float(n)
    return f"{int(n):,}" if n.is_integer() else f"{n:,.1f}"


# ------------------------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One of the issue's targets on one data set: met (True / False), or None when it cannot be
    judged (a row or a group it needs is missing), with the numbers it was judged on."""

    name: str
    met: bool | None
    detail: str


def _value(models: dict[str, Any], model: str, group: str, key: str) -> float | None:
    """``key`` of one model's ``group``: "all", "cold_only", ..., "bucket:<items' count>" or
    "user:<users' known interactions>"."""
    result = models.get(model) or {}
    if ":" in group:
        kind, label = group.split(":", 1)
        return number((result.get({"bucket": "buckets", "user": "user_buckets"}[kind]) or {}).get(label), key)
    return number(result.get(group), key)


def _missing(models: dict[str, Any], needed: list[str], group: str, key: str) -> str | None:
    """A phrase naming what is missing among ``needed`` rows' ``group`` ``key``, or None."""
    gone = [m for m in needed if _value(models, m, group, key) is None]
    return None if not gone else f"no {group} {key} for {', '.join(gone)}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def target_one_list(models: dict[str, Any], k: int) -> Target:
    """The hybrid's one-list Recall@k and NDCG@k are above every other row's (strictly)."""
    name = f"one list R@{k} and N@{k} above every other row"
    others = [m for m in models if m != HYBRID]
    parts, verdicts = [], []
    for key in (f"recall@{k}", f"ndcg@{k}"):
        missing = _missing(models, [HYBRID], "all", key)
        if missing or not others:
            return Target(name, None, missing or "no other rows")
        mine = _value(models, HYBRID, "all", key)
        rivals = {m: v for m in others if (v := _value(models, m, "all", key)) is not None}
        if not rivals:
            return Target(name, None, f"no other row has all {key}")
        best = max(rivals, key=rivals.__getitem__)
        verdicts.append(mine > rivals[best])  # type: ignore[operator]
        short = "" if mine > rivals[best] or not rivals[best] else \
            f", {100 * (1 - mine / rivals[best]):.1f}% short"  # type: ignore[operator]
        parts.append(f"{key.split('@')[0][0].upper()} {_fmt(mine)} vs {_fmt(rivals[best])} ({best}){short}")
    return Target(name, all(verdicts), "; ".join(parts))


def target_at_least(models: dict[str, Any], name: str, group: str, keys: list[str], rivals: list[str],
                    share: float = 1.0) -> Target:
    """The hybrid's ``group`` value of every key ≥ ``share`` × the best of ``rivals``."""
    parts, verdicts = [], []
    for key in keys:
        missing = _missing(models, [HYBRID, *rivals], group, key)
        if missing:
            return Target(name, None, missing)
        mine = _value(models, HYBRID, group, key)
        values = {m: _value(models, m, group, key) for m in rivals}
        best = max(values, key=values.__getitem__)  # type: ignore[arg-type]
        bar = share * values[best]  # type: ignore[operator]
        verdicts.append(mine >= bar)  # type: ignore[operator]
        metric = key.split("@")[0][0].upper()
        label = LABEL.get(group.split(":", 1)[1], group.split(":", 1)[1]) if group.startswith("bucket:") else \
            f"{metric} users {group.split(':', 1)[1]}" if group.startswith("user:") else metric
        against = f"{share:g} × {_fmt(values[best])} ({best}) = {bar:.4f}" if share != 1.0 else \
            f"{_fmt(values[best])} ({best})"
        short = "" if mine >= bar or not bar else f", {100 * (1 - mine / bar):.1f}% short"  # type: ignore[operator]
        parts.append(f"{label} {_fmt(mine)} vs {against}{short}")
    return Target(name, all(verdicts), "; ".join(parts))


NEW_PEERS = ["content", "lightfm", "text_gcn"]  # new among new: the content-side peers
WARM_PEERS = ["lightgcn", "gf_cf", "bspm", "ease"]  # warm among warm: the graph peers
TEMPORAL_SHARE = 1.05  # temporal splits: the one list at least this share of the best peer


def target_above_peers(models: dict[str, Any], k: int, share: float) -> Target:
    """The hybrid's one-list Recall@k and NDCG@k ≥ ``share`` × every other row's."""
    others = [m for m in models if m != HYBRID]
    return target_at_least(models, f"one list R@{k} and N@{k} ≥ {share:g} × the best peer", "all",
                           [f"recall@{k}", f"ndcg@{k}"], others, share)


def is_temporal(entry: dict[str, Any]) -> bool:
    return str(entry.get("split", "")).startswith("temporal")


def is_replay(entry: dict[str, Any]) -> bool:
    return "steps" in entry or str(entry.get("split", "")).startswith("replay")


PRIORS = ["popularity", "trending"]  # zero-history users: the simple priors
SPARSE_ITEM_PEERS = ["content", "lightgcn", "gf_cf"]  # time-true: test items with 1–19 interactions


def time_true_targets(models: dict[str, Any], k: int, replay: bool) -> list[Target]:
    """Issue 33's targets on a replay (all user-steps) or a single-cut temporal split."""
    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    others = [m for m in models if m != HYBRID]
    priors = [m for m in PRIORS if m in models]
    sparse_peers = [m for m in SPARSE_ITEM_PEERS if m in models]
    judged = [target_above_peers(models, k, TEMPORAL_SHARE),
              target_at_least(models, f"zero-history users R and N ≥ max({', '.join(priors)})", "user:0",
                              [recall, ndcg], priors)]
    if replay:
        judged.append(target_at_least(models, "users with 1–4 earlier interactions R and N ≥ the best peer", "user:1-4",
                                      [recall, ndcg], others))
    buckets = [target_at_least(models, "", f"bucket:{b}", [recall], sparse_peers) for b in BUCKETS_SHOWN]
    judged.append(Target(
        f"items with {' and '.join(LABEL[b] for b in BUCKETS_SHOWN)} R@{k} ≥ max({', '.join(sparse_peers)})",
        None if any(t.met is None for t in buckets) else all(t.met for t in buckets),
        "; ".join(t.detail for t in buckets)))
    return judged


def targets(entry: dict[str, Any]) -> list[Target]:
    """The targets for the hybrid on one data set, judged on the means (see the module docstring).
    Peers absent from the JSON are left out of the comparison (the detail names those compared)."""
    models, k = entry["models"], k_of(entry)
    if HYBRID not in models:
        return [Target("hybrid row", None, "no hybrid row")]
    if is_replay(entry) or is_temporal(entry):
        return time_true_targets(models, k, is_replay(entry))
    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    new_peers = [m for m in NEW_PEERS if m in models]
    warm_peers = [m for m in WARM_PEERS if m in models]
    bucket_targets = [
        target_at_least(models, f"bucket {LABEL[b]} R@{k} ≥ max(content, lightgcn)", f"bucket:{b}", [recall],
                        ["content", "lightgcn"])
        for b in BUCKETS_SHOWN
    ]
    both = Target(
        f"buckets {' and '.join(LABEL[b] for b in BUCKETS_SHOWN)} R@{k} ≥ max(content, lightgcn)",
        None if any(t.met is None for t in bucket_targets) else all(t.met for t in bucket_targets),
        "; ".join(t.detail for t in bucket_targets),
    )
    return [
        target_one_list(models, k),
        target_at_least(models, f"new among new R and N ≥ max({', '.join(new_peers)})", "cold_only",
                        [recall, ndcg], new_peers),
        target_at_least(models, f"warm among warm R ≥ {WARM_SHARE:g} × max({', '.join(warm_peers)})", "warm_only",
                        [recall], warm_peers, WARM_SHARE),
        both,
    ]


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "**n/a**"}[met]


def targets_line(entry: dict[str, Any]) -> str:
    """One line: each target's verdict and the numbers it was judged on, then the count met."""
    judged = targets(entry)
    body = " · ".join(f"{t.name}: {verdict(t.met)} ({t.detail})" for t in judged)
    n_met = sum(t.met is True for t in judged)
    return f"Targets for the hybrid (means): {body}. **{n_met} of {len(judged)} met.**"


