"""LightGCN (and, with --models, MF and NGCF) on the official Gowalla split, timed to paper quality.

Trains on all of train.txt (as the paper) and ranks every item for every test user on the device,
training items masked: full-test Recall@20 / NDCG@20 (paper: LightGCN 0.1830 / 0.1554, NGCF 0.1570 /
0.1327, MF 0.1291 / 0.1109). The test set is only *reported* along the way (the curve), never used to
choose an epoch: the final numbers are those of the last epoch trained.

Recipe: the paper's model (64-d, 3 layers, λ = 1e-4, BPR, uniform negatives, Adam) with bigger
batches and a higher learning rate than its lr 1e-3 / batch 2048, so that far fewer steps reach the
same quality; every flag below overrides it.

    python benchmarks/gowalla_lightgcn.py --data ../shared/data/lightgcn-gowalla/light_gcn_gowalla.zip
    python benchmarks/gowalla_lightgcn.py --models lightgcn,mf,ngcf --max-minutes 5

Prints, per model: epochs, s/epoch (training only), total wall seconds (the epoch-count probe, the
graph, training, the curve's evaluations and the final one; not reading the files), the seconds
until the curve first reached the target,
Recall@20, NDCG@20, the device, and the curve. ``--json`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import Interactions
from hybrid.models import FitData, make_model
from hybrid.models.bpr import BPRModel, heldout_metrics
from hybrid.models.embedding import EmbeddingRecommender

logger = logging.getLogger("gowalla_lightgcn")

TARGET = {"recall@20": 0.1800, "ndcg@20": 0.1520}
PAPER = {"lightgcn": (0.1830, 0.1554), "ngcf": (0.1570, 0.1327), "mf": (0.1291, 0.1109)}
DEFAULT_DATA = "/work/shared/data/lightgcn-gowalla"


def load_split(name: str, data: str | None, data_root: str | None) -> tuple[Interactions, Interactions]:
    """Train and test interactions over one id universe.

    Args:
        name: ``gowalla`` (official LightGCN split) or another ``hybrid.data.datasets`` name; a set
            without its own test split is split per user (last 20% of each user's interactions
            by time) for benchmarking only.
        data: the data set's folder or zip, or None to use ``data_root``.
        data_root: folder holding the data sets.
    """
    bundle = load_dataset(name, data_root, data)
    frame = bundle.interactions[["user", "item"] + (["timestamp"] if "timestamp" in bundle.interactions else [])]
    if bundle.test is not None:
        train_frame, test_frame = frame, bundle.test[["user", "item"]]
    else:
        ordered = frame.sort_values(["user", "timestamp"] if "timestamp" in frame else ["user"], kind="stable")
        rank = ordered.groupby("user").cumcount(ascending=False).to_numpy()
        size = ordered.groupby("user")["item"].transform("size").to_numpy()
        held = rank < np.floor(0.2 * size)
        train_frame, test_frame = ordered[~held], ordered[held]
    users = pd.Index(np.sort(pd.unique(pd.concat([train_frame["user"], test_frame["user"]]))))
    items = pd.Index(np.sort(pd.unique(pd.concat([train_frame["item"], test_frame["item"]]))))
    train = Interactions.from_frame(train_frame[["user", "item"]], user_ids=users, item_ids=items)
    test = Interactions.from_frame(test_frame[["user", "item"]], user_ids=users, item_ids=items)
    return train, test


def run_model(
    name: str, params: dict[str, Any], train: Interactions, test: Interactions, device: torch.device,
    eval_every: int, eval_batch: int, seed: int, start: float,
) -> dict[str, Any]:
    """Fit one registered model without validation, reporting test metrics every ``eval_every`` epochs.

    Wall-clock times count from ``start`` (``time.perf_counter()`` before any probe).
    """
    known, heldout = train.matrix(), test.matrix()
    model = make_model(name, params)
    if not isinstance(model, EmbeddingRecommender):
        raise ValueError(f"model {name!r} is not a BPR embedding model")
    curve: list[dict[str, float]] = []
    train_seconds = 0.0
    reached: float | None = None

    def on_epoch(record: dict[str, Any], module: BPRModel) -> None:
        nonlocal train_seconds, reached
        train_seconds += record["seconds"]
        if record["epoch"] % eval_every:
            return
        module.eval()
        point = {"epoch": record["epoch"], "loss": round(record["loss"], 5), "train_s": round(train_seconds, 1),
                 "wall_s": round(time.perf_counter() - start, 1),
                 **heldout_metrics(module, known, heldout, k=20, batch_size=eval_batch)}
        curve.append(point)
        if reached is None and all(point[k] >= v for k, v in TARGET.items()):
            reached = point["wall_s"]
        logger.info("%s %s", name, point)

    model.fit(FitData(train=train, valid=None, device=device, seed=seed), on_epoch=on_epoch)
    final = heldout_metrics(model.module_, known, heldout, k=20, batch_size=eval_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    epochs = len(model.result_.history)
    if reached is None and all(final[k] >= v for k, v in TARGET.items()):
        reached = wall
    return {
        "model": name, "device": str(device), "epochs": epochs, "s_per_epoch": round(train_seconds / epochs, 3),
        "train_s": round(train_seconds, 1), "wall_s": round(wall, 1), "stopped": model.result_.stopped,
        "target_reached_wall_s": reached, **{k: round(v, 4) for k, v in final.items()},
        "paper": dict(zip(["recall@20", "ndcg@20"], PAPER.get(name, (None, None)), strict=True)),
        "config": {k: v for k, v in vars(model.config).items() if k != "show_progress"}, "curve": curve,
    }


def epochs_for_budget(
    name: str, params: dict[str, Any], train: Interactions, device: torch.device, minutes: float, seed: int
) -> int:
    """How many epochs fit ``minutes`` of training: time 2 epochs of a throwaway model (the first
    is a warm-up), keep 15% for the curve's evaluations. Lets a cosine schedule end on time."""
    probe = make_model(name, {**params, "epochs": 2, "lr_schedule": "constant", "max_minutes": None})
    probe.fit(FitData(train=train, valid=None, device=device, seed=seed))
    seconds = probe.result_.history[1]["seconds"]  # type: ignore[attr-defined]
    epochs = max(1, int(0.85 * 60 * minutes / seconds))
    logger.info("%s: %.3f s/epoch in the probe -> %d epochs for %.2f minutes", name, seconds, epochs, minutes)
    return epochs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=f"zip or folder of the split (default: {DEFAULT_DATA})")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--dataset", default="gowalla", help="hybrid.data.datasets name (default gowalla)")
    parser.add_argument("--models", default="lightgcn", help="comma-separated: lightgcn, mf, ngcf")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--max-minutes", type=float, default=None, help="training budget per model")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: as many as fit --max-minutes (timed by a 2-epoch probe), else 400")
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                        help="cosine: lr annealed to 0 over --epochs (set --epochs to what fits the budget)")
    parser.add_argument("--reg", type=float, default=1e-4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--sampler", choices=["uniform", "hard", "curriculum"], default="uniform")
    parser.add_argument("--eval-every", type=int, default=10, help="curve: test metrics every N epochs")
    parser.add_argument("--eval-batch", type=int, default=2048, help="users ranked at once")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.data is None and args.data_root is None and args.dataset == "gowalla":
        args.data = DEFAULT_DATA
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    loading = time.perf_counter()
    train, test = load_split(args.dataset, args.data, args.data_root)
    logger.info("%s: %s train, %d test interactions, read in %.1f s (not in the wall times); device %s",
                args.dataset, train, len(test), time.perf_counter() - loading, device)
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        params: dict[str, Any] = {
            "dim": args.dim, "lr": args.lr, "lr_schedule": args.lr_schedule, "reg": args.reg,
            "batch_size": args.batch_size,
            "epochs": args.epochs, "sampler": args.sampler, "max_minutes": args.max_minutes, "seed": args.seed,
        }
        if name != "mf":
            params["layers"] = args.layers
        start = time.perf_counter()
        if args.epochs is None:
            params["epochs"] = (400 if args.max_minutes is None else
                                epochs_for_budget(name, params, train, device, args.max_minutes, args.seed))
        result = run_model(name, params, train, test, device, args.eval_every, args.eval_batch, args.seed, start)
        results.append(result)
        print(
            f"{name}: epochs {result['epochs']}, {result['s_per_epoch']:.2f} s/epoch, wall {result['wall_s']:.1f} s "
            f"(target {TARGET['recall@20']}/{TARGET['ndcg@20']} reached at {result['target_reached_wall_s']} s), "
            f"Recall@20 {result['recall@20']:.4f}, NDCG@20 {result['ndcg@20']:.4f} "
            f"(paper {PAPER.get(name)}), device {device}, stopped by {result['stopped']}"
        )
        print("  curve: " + " ".join(f"{p['epoch']}:{p['recall@20']:.4f}/{p['ndcg@20']:.4f}" for p in result["curve"]))
    if args.json:
        import sys

        from hybrid.evaluation.provenance import peak_rss_bytes, provenance

        record = {"command": "python " + " ".join(["benchmarks/gowalla_lightgcn.py", *sys.argv[1:]]),
                  "provenance": provenance(device), "peak_rss_bytes": peak_rss_bytes(), "models": results}
        Path(args.json).write_text(json.dumps(record, indent=2))
    return results


if __name__ == "__main__":
    main()
