"""``HybridRecommender.partial_fit`` against a full refit, on ML-100K's temporal split.

The training period (train + validation of ``configs/ml100k_temporal.yaml``) is cut by time: a
model is fitted on its first 90% and then given the last 10% through ``partial_fit`` (the graph
half refitted, the gate kept); another is fitted on all of it. Both rank the test period's items
for the test users they know (known items masked); Recall@20 and the seconds each took are
printed and written to JSON.

Run: python benchmarks/partial_fit.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hybrid import HybridRecommender
from hybrid.config import load_config
from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import ITEM, TIMESTAMP, USER
from hybrid.data.splits import make_split
from hybrid.evaluation.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]
K = 20


def recall_at_k(rec: HybridRecommender, test: pd.DataFrame) -> tuple[float, int]:
    """Mean Recall@K over the test users the model knows (known items masked)."""
    truth = test.groupby(USER)[ITEM].apply(set)
    users = [u for u in truth.index if u in rec.user_ids_]
    ids, _ = rec.recommend(users, k=K)
    recalls = [len(set(row) & truth[u]) / len(truth[u]) for u, row in zip(users, ids, strict=True)]
    return float(np.mean(recalls)), len(users)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--late-share", type=float, default=0.1, help="share of the training timeline given to partial_fit")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "partial_fit.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = load_config(ROOT / "configs" / "ml100k_temporal.yaml")
    bundle = load_dataset("ml-100k", args.data_root)
    split = make_split(bundle.interactions, config.split)
    train = pd.concat([split.train, split.valid]).sort_values(TIMESTAMP, kind="stable")
    cut = int(len(train) * (1 - args.late_share))
    early, late = train.iloc[:cut], train.iloc[cut:]
    texts = bundle.item_text.to_dict()

    start = time.perf_counter()
    full = HybridRecommender(device="cpu").fit(train, texts)
    full_seconds = time.perf_counter() - start
    part = HybridRecommender(device="cpu").fit(early, texts)
    start = time.perf_counter()
    part.partial_fit(late)
    partial_seconds = time.perf_counter() - start
    full_recall, full_users = recall_at_k(full, split.test)
    part_recall, part_users = recall_at_k(part, split.test)
    result = {
        "command": "python benchmarks/partial_fit.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "git_commit": git_commit(), "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "late_share": args.late_share, "late_interactions": len(late), "k": K,
        "full_refit": {"recall@20": round(full_recall, 4), "seconds": round(full_seconds, 2), "users": full_users},
        "partial_fit": {"recall@20": round(part_recall, 4), "seconds": round(partial_seconds, 2), "users": part_users},
        "recall_ratio": round(part_recall / full_recall, 4) if full_recall else None,
        "time_ratio": round(partial_seconds / full_seconds, 4),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("| model | Recall@20 | seconds | test users |\n|---|---|---|---|")
    for name in ("full_refit", "partial_fit"):
        r = result[name]
        print(f"| {name} | {r['recall@20']:.4f} | {r['seconds']:.1f} | {r['users']} |")
    print(f"\npartial_fit reaches {result['recall_ratio']:.1%} of the full refit's Recall@20 in "
          f"{result['time_ratio']:.1%} of its time ({len(late)} interactions added)")


if __name__ == "__main__":
    main()
