"""Exploration slots replayed on the temporal splits: how many new items earn history, at what click cost.

For each data set (:data:`DATASETS`: the bundled Online Retail by day, ml-latest-small by month),
the split of its config (``hybrid-eval``'s, filters on the training side), then two replays of
:func:`hybrid.evaluation.replay.replay` per setting (m = 0, and each policy with each number of
slots in :data:`SLOTS`), k = 20:

- **validation**: fitted on the training period before its last stretch, replayed over that
  stretch; the catalogue is every item of the training period. The stretch is a fixed setting,
  read off the training period alone: the last ``--valid-share`` of its interactions by time
  (:data:`VALID_SHARE`, the share the hybrid's own time rehearsal holds out,
  ``FusionConfig.valid_new_share``); nothing of the test period sets it, its length included.
  The recommended setting is chosen here: the most new items warmed
  (reaching 5 interactions) among settings whose click rate is at most 3% below m = 0's; ties go to
  the higher click rate; m = 0 when no setting warms more than it.
- **test**: fitted on the whole training period with the whole catalogue (items no one buys
  included), replayed over the test period.

Only users the model knows (some history before the step) are served; clicks join through
``partial_fit``. Writes ``--json`` (default benchmarks/results/explore_replay.json): every row, and
``"chosen": {data set: {"policy", "slots", "warmed_ratio", "click_cost"}}`` measured on test.
One seed: the fit is deterministic and the policies' draws are seeded by ``--seed``.

    python benchmarks/explore_replay.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybrid import HybridRecommender
from hybrid.config import load_config
from hybrid.data.catalogue import catalogue_ids, filter_ratings, filter_training
from hybrid.data.datasets import load_dataset
from hybrid.data.interactions import Interactions
from hybrid.data.splits import make_split
from hybrid.evaluation.provenance import git_commit
from hybrid.evaluation.replay import periods_of, replay
from hybrid.fusion.explore import POLICIES, ExploreConfig

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"online_retail": ("configs/default.yaml", "D"), "ml-latest-small": ("configs/ml_latest_small_temporal.yaml", "M")}
SLOTS = (1, 2, 5)
K = 20
MAX_COST = 0.03  # a chosen setting gives up at most this share of m = 0's click rate
VALID_SHARE = 0.2  # the validation stretch: this share of the training interactions, the latest by time


def settings(seed: int) -> list[ExploreConfig | None]:
    return [None] + [ExploreConfig(slots=m, policy=p, seed=seed) for p in POLICIES for m in SLOTS]


def label(explore: ExploreConfig | None) -> dict[str, Any]:
    return {"policy": None, "slots": 0} if explore is None else {"policy": explore.policy, "slots": explore.slots}


def run_period(fit: pd.DataFrame, text: pd.Series, replayed: pd.DataFrame, freq: str, seed: int) -> list[dict[str, Any]]:
    """Every setting's replay of ``replayed`` after one fit on ``fit``."""
    start = time.perf_counter()
    rec = HybridRecommender(device="cpu", seed=0).fit(fit, text)
    fit_seconds = time.perf_counter() - start
    steps = periods_of(replayed, replayed["timestamp"].min(), replayed["timestamp"].max() + 1, freq)
    rows = []
    for explore in settings(seed):
        result = replay(rec, steps, k=K, explore=explore)
        rows.append({**label(explore), **result.record(), "fit_seconds": round(fit_seconds, 1)})
        print(f"  {rows[-1]['policy'] or 'off':9s} m={rows[-1]['slots']}: click rate {result.click_rate:.4f}, "
              f"warmed {result.warmed} of {result.new_items} new, {result.seconds:.0f} s", flush=True)
    return rows


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``warmed_ratio`` and ``click_cost`` against the m = 0 row."""
    base = next(r for r in rows if r["slots"] == 0)
    for row in rows:
        row["warmed_ratio"] = round(row["warmed"] / base["warmed"], 3) if base["warmed"] else None
        row["click_cost"] = round(1 - row["click_rate"] / base["click_rate"], 4) if base["click_rate"] else None
    return rows


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The validation rule of the module docstring."""
    base = next(r for r in rows if r["slots"] == 0)
    affordable = [r for r in rows if r["slots"] and r["click_cost"] is not None and r["click_cost"] <= MAX_COST
                  and r["warmed"] > base["warmed"]]
    if not affordable:
        return {"policy": None, "slots": 0}
    best = max(affordable, key=lambda r: (r["warmed"], r["click_rate"]))
    return {"policy": best["policy"], "slots": best["slots"]}


def validation_start(timestamps: pd.Series, share: float) -> int:
    """The first second of the validation stretch: the time after which the latest ``share`` of
    ``timestamps`` (the training period's, int64 Unix seconds) falls; raises where that leaves
    either side empty."""
    if not 0 < share < 1:
        raise ValueError(f"valid_share must be in (0, 1), got {share!r}")
    times = np.sort(timestamps.to_numpy())
    start = int(times[min(int(len(times) * (1 - share)), len(times) - 1)])
    if start <= times[0]:
        raise ValueError(f"valid_share {share}: the training period's interactions share one time, so nothing "
                         "would be left before the validation stretch; use a smaller share")
    return start


def dataset_rows(name: str, data_root: str, seed: int, valid_share: float = VALID_SHARE) -> dict[str, Any]:
    config_path, freq = DATASETS[name]
    config = load_config(ROOT / config_path)
    bundle = load_dataset(config.data.name, data_root, config.data.path)
    frame = filter_ratings(Interactions.from_frame(bundle.interactions).to_frame(), config.data)
    split = filter_training(make_split(frame, config.split), config.data)
    train = pd.concat([split.train, split.valid])
    _, items = catalogue_ids(frame, bundle.item_text.index, None)
    text = bundle.item_text.reindex(items).fillna("").astype(str)
    test_start = split.test["timestamp"].min()
    valid_start = validation_start(train["timestamp"], valid_share)  # the training period alone
    early, late = train[train["timestamp"] < valid_start], train[train["timestamp"] >= valid_start]
    known = text[text.index.isin(train["item"])]
    print(f"{name}: validation {len(late)} interactions from {pd.Timestamp(valid_start, unit='s').date()}", flush=True)
    validation = compare(run_period(early, known, late, freq, seed))
    chosen = choose(validation)
    print(f"{name}: test {len(split.test)} interactions from {pd.Timestamp(test_start, unit='s').date()}", flush=True)
    test = compare(run_period(train, text, split.test, freq, seed))
    picked = next(r for r in test if r["policy"] == chosen["policy"] and r["slots"] == chosen["slots"])
    return {"config": config_path, "step": freq, "k": K, "valid_share": valid_share,
            "valid_start": pd.Timestamp(valid_start, unit="s").isoformat(), "validation": validation, "test": test,
            "chosen": {**chosen, "warmed_ratio": picked["warmed_ratio"], "click_cost": picked["click_cost"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-share", type=float, default=VALID_SHARE,
                        help="the validation stretch: this share of the training interactions, the latest by time")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "explore_replay.json")
    args = parser.parse_args(argv)
    if not 0 < args.valid_share < 1:
        parser.error(f"--valid-share must be in (0, 1), got {args.valid_share}")
    logging.basicConfig(level=logging.WARNING)
    result: dict[str, Any] = {
        "command": "python benchmarks/explore_replay.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "git_commit": git_commit(),
        "max_click_cost": MAX_COST, "datasets": {},
    }
    for name in args.datasets:
        result["datasets"][name] = dataset_rows(name, args.data_root, args.seed, args.valid_share)
        result["chosen"] = {n: d["chosen"] for n, d in result["datasets"].items()}
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    sys.path.insert(0, str(ROOT / "scripts"))
    from render_sections import render_explore_replay

    print(render_explore_replay(result, str(args.json.relative_to(ROOT))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
