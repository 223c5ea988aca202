"""How sure a replay's comparisons are: a paired bootstrap over its users.

A replay on a small data set pools a few hundred user-steps, and a ratio of means of 1.03 there
can be anything from about 0.9 to 1.2. Each comparison the replay targets make (the hybrid against
its best rival by mean, on all user-steps, on zero-history user-steps and on those with 1-4
earlier interactions) gets the interval of the ratio of means over resamples of the *users*
drawn with replacement, each drawn user bringing all its steps of the group (a user who comes
back is not independent of itself), the same draw for both models (paired). The rival is the best
one on the whole sample, not chosen again in each resample. Resamples in which the rival scores
nothing have no ratio and are left out (their count is recorded); a group with fewer than
``MIN_USER_STEPS`` user-steps, or whose rival scores nothing, gets no interval.

The per-user-step values are recomputed from the run's evidence files (each step folder's
``rankings_<model>.csv``, ``test.csv`` and ``known_items.csv``) with :mod:`hybrid.metrics`, and
each model's means are checked against the JSON's before any interval is drawn.

    python benchmarks/replay_intervals.py   # rewrites the intervals of every replay in cold_start.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hybrid.evaluation.prepare import USER_BUCKETS
from hybrid.metrics import hit_matrix, per_user_metrics

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from render_targets import HYBRID, PRIORS, is_replay, k_of  # noqa: E402

RESAMPLES = 5000
LEVEL = 0.90
MIN_USER_STEPS = 20
BUCKETS = {name: (low, high) for name, low, high in USER_BUCKETS if name in ("0", "1-4")}
METRICS = ("recall", "ndcg")


def read_ids(path: Path) -> pd.DataFrame:
    """An evidence CSV with ids kept as written (no "NA" turned into a missing value)."""
    return pd.read_csv(path, dtype={"user": str, "item": str}, keep_default_na=False)


def step_metrics(step: Path, models: list[str], k: int) -> pd.DataFrame:
    """One row per test user of one step: the user, its known-interaction count and each model's
    Recall@k and NDCG@k (columns ``<model> recall``, ``<model> ndcg``)."""
    test, known = read_ids(step / "test.csv"), read_ids(step / "known_items.csv")
    lists = {m: read_ids(step / f"rankings_{m}.csv") for m in models}
    users = pd.Index(test["user"].unique())
    items = pd.Index(pd.concat([test["item"], *(ranked["item"] for ranked in lists.values())]).unique())
    truth = sp.csr_matrix((np.ones(len(test)), (users.get_indexer(test["user"]), items.get_indexer(test["item"]))),
                          shape=(len(users), len(items)))
    truth.data[:] = 1.0  # a repeated test pair is one relevant item
    n_relevant = torch.as_tensor(np.diff(truth.indptr), dtype=torch.int64)
    counts = known.groupby("user").size().reindex(users, fill_value=0).to_numpy()
    frame = pd.DataFrame({"user": users, "known": counts})
    for model, ranked in lists.items():
        ranked = ranked[(ranked["rank"] <= k) & ranked["user"].isin(users)]
        top = torch.full((len(users), k), -1, dtype=torch.int64)
        top[users.get_indexer(ranked["user"]), ranked["rank"].to_numpy() - 1] = torch.as_tensor(
            items.get_indexer(ranked["item"]))
        hits = hit_matrix(top.clamp(min=0), truth) & (top >= 0)
        values = per_user_metrics(hits, n_relevant, k)
        for metric in METRICS:
            frame[f"{model} {metric}"] = values[metric].numpy()
    return frame


def user_step_metrics(run: Path, steps: int, models: list[str], k: int) -> pd.DataFrame:
    """:func:`step_metrics` of the replay's ``steps`` step folders (exactly those: a folder left
    from an earlier run with more steps is not read), stacked."""
    return pd.concat([step_metrics(run / f"step_{s}", models, k) for s in range(steps)], ignore_index=True)


def check_means(frame: pd.DataFrame, entry: dict[str, Any], k: int) -> None:
    """Raise if a recomputed mean differs from the JSON's: the files are not the run's."""
    for model, result in entry["models"].items():
        for metric in METRICS:
            recorded = (result.get("all") or {}).get(f"{metric}@{k}")
            if recorded is not None and abs(frame[f"{model} {metric}"].mean() - recorded) > 1e-9:
                raise ValueError(f"{model} {metric}@{k}: evidence files give {frame[f'{model} {metric}'].mean():.6f}, "
                                 f"the JSON {recorded:.6f}; rerun benchmarks/cold_start.py")


def ratio_interval(mine: np.ndarray, theirs: np.ndarray, users: np.ndarray,
                   rng: np.random.Generator) -> tuple[float, float, int]:
    """The central ``LEVEL`` interval of sum(mine) / sum(theirs) (the ratio of means) over
    resamples of ``users`` (each with all its rows), and how many resamples had no ratio."""
    codes, owners = np.unique(users, return_inverse=True)
    mine_by, theirs_by = np.bincount(owners, mine, len(codes)), np.bincount(owners, theirs, len(codes))
    draws = rng.integers(0, len(codes), (RESAMPLES, len(codes)))
    numerators, denominators = mine_by[draws].sum(1), theirs_by[draws].sum(1)
    defined = denominators > 0
    ratios = numerators[defined] / denominators[defined]
    tail = (1 - LEVEL) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail)), int((~defined).sum())


def comparisons(frame: pd.DataFrame, models: list[str], k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Each group's comparison of the hybrid with its best rival by mean, with its interval."""
    out = []
    for group in ("all", *BUCKETS):
        low, high = BUCKETS.get(group, (0, np.inf))
        part = frame[(frame["known"] >= low) & (frame["known"] <= high)]
        rivals = [m for m in (PRIORS if group == "0" else models) if m in models and m != HYBRID]
        for metric in METRICS if rivals else ():
            best = max(rivals, key=lambda m: part[f"{m} {metric}"].mean()) if len(part) else None
            record = {"group": "all user-steps" if group == "all" else f"users {group}", "metric": f"{metric}@{k}",
                      "peer": best, "user-steps": len(part), "users": int(part["user"].nunique())}
            mine, theirs = part[f"{HYBRID} {metric}"].to_numpy(), part[f"{best} {metric}"].to_numpy() if best else 0
            if len(part) < MIN_USER_STEPS or not np.sum(theirs) > 0:
                out.append({**record, "interval": None})
                continue
            lo, hi, undefined = ratio_interval(mine, theirs, part["user"].to_numpy(), rng)
            out.append({**record, "ratio": round(float(mine.sum() / theirs.sum()), 3),
                        "interval": [round(lo, 3), round(hi, 3)], "resamples without a ratio": undefined})
    return out


def replay_intervals(run: Path, entry: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The intervals of the replay whose JSON entry is ``entry`` and whose evidence is in ``run``."""
    models, k = list(entry["models"]), k_of(entry)
    frame = user_step_metrics(run, len(entry["steps"]), models, k)
    check_means(frame, entry, k)
    return {"resamples": RESAMPLES, "level": LEVEL, "resampled": "users (each with all its steps)",
            "comparisons": comparisons(frame, models, k, np.random.default_rng(seed))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "cold_start.json")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "cold_start",
                        help="cold_start.py's --out: the evidence of each config in RUNS/<config name>/")
    args = parser.parse_args(argv)
    document = json.loads(args.json.read_text())
    for name, entry in document["datasets"].items():
        if is_replay(entry):
            entry["intervals"] = replay_intervals(args.runs / name, entry)
            print(name, json.dumps(entry["intervals"]["comparisons"]))
    temporary = args.json.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    temporary.replace(args.json)


if __name__ == "__main__":
    main()
