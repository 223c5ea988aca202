"""How sure a replay's comparisons are: a paired bootstrap over its user-steps.

A replay on a small data set pools a few hundred user-steps, and a ratio of means of 1.03 there
can be anything from about 0.9 to 1.2. Each comparison the replay targets make (the hybrid against
the best rival by mean, on all user-steps, on zero-history users and on users with 1-4 earlier
interactions) gets the interval of the ratio of means over resamples of the user-steps drawn with
replacement, the same draw for both models (paired). The per-user-step values are recomputed
from the run's evidence files (each ``step_*`` folder's ``rankings_<model>.csv``, ``test.csv``
and ``known_items.csv``), not read from the JSON, so the interval checks what it describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESAMPLES = 5000
LEVEL = 0.90
HYBRID = "hybrid"
PRIORS = ("popularity", "trending")  # the rivals of zero-history users (render_targets.PRIORS)
GROUPS = {"all": (0, None), "users 0": (0, 0), "users 1-4": (1, 4)}  # known interactions, inclusive


def list_metrics(top: list[str], relevant: set[str], k: int) -> tuple[float, float]:
    """Recall@k and NDCG@k of one list (binary relevance; the ideal list holds min(|relevant|, k) hits)."""
    hits = np.array([item in relevant for item in top[:k]], dtype=float)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discount[:min(len(relevant), k)].sum()
    return hits.sum() / len(relevant), float(hits @ discount[:len(hits)]) / ideal


def user_step_metrics(run: Path, models: list[str], k: int) -> pd.DataFrame:
    """One row per user-step of the replay in ``run``: its known-interaction count and each
    model's Recall@k and NDCG@k (columns ``<model> recall`` and ``<model> ndcg``)."""
    rows = []
    for step in sorted(run.glob("step_*"), key=lambda p: int(p.name.split("_")[1])):
        truth = pd.read_csv(step / "test.csv", dtype=str).groupby("user")["item"].agg(set)
        known = pd.read_csv(step / "known_items.csv", dtype=str).groupby("user").size()
        lists = {}
        for model in models:
            ranked = pd.read_csv(step / f"rankings_{model}.csv", dtype={"user": str, "item": str})
            lists[model] = ranked.sort_values(["user", "rank"]).groupby("user")["item"].agg(list)
        for user, relevant in truth.items():
            row: dict[str, Any] = {"step": step.name, "user": user, "known": int(known.get(user, 0))}
            for model in models:
                row[f"{model} recall"], row[f"{model} ndcg"] = list_metrics(lists[model].get(user, []), relevant, k)
            rows.append(row)
    return pd.DataFrame(rows)


def ratio_interval(mine: np.ndarray, theirs: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The central ``LEVEL`` interval of mean(mine) / mean(theirs) over paired resamples."""
    draws = rng.integers(0, len(mine), (RESAMPLES, len(mine)))
    ratios = mine[draws].mean(1) / np.maximum(theirs[draws].mean(1), 1e-12)
    tail = (1 - LEVEL) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


def replay_intervals(run: Path, models: list[str], k: int, seed: int = 0) -> dict[str, Any]:
    """Each replay comparison of the hybrid with its best rival by mean, with its interval."""
    frame = user_step_metrics(run, models, k)
    rng = np.random.default_rng(seed)
    comparisons = []
    for group, (low, high) in GROUPS.items():
        part = frame[(frame["known"] >= low) & (frame["known"] <= (np.inf if high is None else high))]
        rivals = [m for m in (PRIORS if group == "users 0" else models) if m in models and m != HYBRID]
        if len(part) < 2 or HYBRID not in models or not rivals:
            continue
        for metric in ("recall", "ndcg"):
            best = max(rivals, key=lambda m: part[f"{m} {metric}"].mean())
            mine, theirs = part[f"{HYBRID} {metric}"].to_numpy(), part[f"{best} {metric}"].to_numpy()
            low_ratio, high_ratio = ratio_interval(mine, theirs, rng)
            comparisons.append({
                "group": group, "metric": f"{metric}@{k}", "peer": best, "user-steps": len(part),
                "hybrid": round(float(mine.mean()), 4), "peer value": round(float(theirs.mean()), 4),
                "ratio": round(float(mine.mean() / max(theirs.mean(), 1e-12)), 3),
                "interval": [round(low_ratio, 3), round(high_ratio, 3)],
            })
    return {"resamples": RESAMPLES, "level": LEVEL, "comparisons": comparisons}
