"""How many L-BFGS steps the hybrid's gates need: rehearsal recall and fit seconds by ``steps``.

For each config (one seed, ``hybrid-eval``'s split), the hybrid is fitted with each ``--steps``
value; the JSON keeps the item gate's validation Recall@20 (on the selection users, held out of
its fit), each new-user gate's rehearsal Recall@20 and the fit seconds. ``FusionConfig.steps`` is
the smallest value past which no recall moves by more than 0.002.

    python benchmarks/gate_steps.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from hybrid.config import load_config
from hybrid.data.datasets import load_dataset
from hybrid.evaluation.prepare import prepare
from hybrid.evaluation.provenance import git_commit
from hybrid.models.base import import_builtins, make_model

import_builtins()  # every built-in model's module now: the run uses one version of their code

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ("configs/ml100k_cold_items.yaml", "configs/amazon_magazine_temporal.yaml", "configs/default.yaml")


def run(path: Path, data_root: str | None, steps: list[int]) -> dict[str, Any]:
    config = load_config(path)
    prepared = prepare(load_dataset(config.data.name, data_root, config.data.path), config, torch.device("cpu"))
    rows = {}
    for n in steps:
        model = make_model("hybrid", {**(config.params.get("hybrid") or {}), "steps": n})
        start = time.perf_counter()
        model.fit(prepared.fit_data)
        chosen = model.chosen()
        new_users = {name: value["valid_recall@20 new-user gate"] for name, value in chosen["new users"].items()
                     if isinstance(value, dict) and "valid_recall@20 new-user gate" in value}
        rows[str(n)] = {"fit_seconds": round(time.perf_counter() - start, 2), "loss": chosen["loss"],
                        "item gate valid_recall@20": chosen["valid_recall@20"]["hybrid"],
                        "new-user gates valid_recall@20": new_users}
        print(path.stem, n, rows[str(n)], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--steps", default="15,30,100")
    parser.add_argument("--json", default="benchmarks/results/gate_steps.json")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    document: dict[str, Any] = {"command": "python benchmarks/gate_steps.py", "git_commit": git_commit(), "configs": {}}
    for name in args.configs:
        path = Path(name) if Path(name).is_file() else ROOT / name
        document["configs"][path.stem] = run(path, args.data_root, steps)
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
