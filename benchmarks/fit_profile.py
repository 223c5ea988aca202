"""Where the hybrid's fit spends its time: seconds and peak memory per stage, against GF-CF's fit.

For each config (default: every shared cold-item config and the bundled default), one seed: the
split of ``hybrid-eval`` (:func:`hybrid.evaluation.evaluate.prepare`), the item and user texts
encoded once first and the process's encoder instances then dropped, so the fit starts as a second
``hybrid-eval`` run of the config does (every vector in the on-disk cache, no encoder loaded: a
cache hit never loads one, and any load the fit still makes is timed), then ``hybrid`` fitted with the
config's parameters and ``gf_cf`` fitted on the same data in the same process (the ratio). The
stages come from :class:`hybrid.profiling.StageProfile` (``chosen()["profile"]``).

Writes ``--json`` (default benchmarks/results/fit_profile.json) and prints one table per config.

    python benchmarks/fit_profile.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hybrid.config import load_config
from hybrid.data.datasets import load_dataset
from hybrid.data.text_features import encode_texts, forget_encoders
from hybrid.evaluation.prepare import prepare
from hybrid.evaluation.provenance import git_commit
from hybrid.models.base import import_builtins, make_model

import_builtins()  # every built-in model's module now: the run uses one version of their code

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (
    "configs/ml100k_cold_items.yaml",
    "configs/ml_latest_small_cold_items.yaml",
    "configs/ml1m_cold_items.yaml",
    "configs/amazon_scientific_cold_items.yaml",
    "configs/lastfm_cold_items.yaml",
    "configs/default.yaml",
)
# Fit seconds the hybrid must stay under (issue: "the hybrid's win must be cheap"), by config name.
TARGETS = {"ml100k_cold_items": 10, "ml_latest_small_cold_items": 20, "ml1m_cold_items": 40,
           "lastfm_cold_items": 30, "default": 10}


def profile_config(path: Path, data_root: str | None) -> dict[str, Any]:
    """One config's fit profile (see the module docstring)."""
    config = load_config(path)
    bundle = load_dataset(config.data.name, data_root, config.data.path)
    prepared = prepare(bundle, config, torch.device("cpu"))
    data = prepared.fit_data
    model = make_model("hybrid", config.params.get("hybrid") or {})
    encoder = model.config.encoder
    encode_texts(data.item_text or [], encoder)  # warm the on-disk cache
    if data.user_text:
        encode_texts([t for t in data.user_text if t.strip()], encoder)
    forget_encoders()  # as a fresh process: what the fit loads, it pays for
    start = time.perf_counter()
    model.fit(data)
    hybrid_seconds = time.perf_counter() - start
    start = time.perf_counter()
    make_model("gf_cf", config.params.get("gf_cf") or {}).fit(data)
    peer_seconds = time.perf_counter() - start
    return {
        "config": str(path), "dataset": bundle.name, "split": prepared.split.name,
        "users": data.train.n_users, "items": data.train.n_items,
        "interactions": len(data.train) + (0 if data.valid is None else len(data.valid)),
        "hybrid_fit_seconds": round(hybrid_seconds, 2), "gf_cf_fit_seconds": round(peer_seconds, 2),
        "ratio": round(hybrid_seconds / max(peer_seconds, 1e-9), 1),
        "target_seconds": TARGETS.get(config.name), "stages": model.chosen()["profile"],
        "warm_model": model.chosen().get("warm_model"),
    }


def table(name: str, entry: dict[str, Any]) -> str:
    """Markdown table of one config's stages."""
    lines = [f"### {name}: hybrid fit {entry['hybrid_fit_seconds']} s (target {entry['target_seconds']} s), "
             f"GF-CF {entry['gf_cf_fit_seconds']} s, ratio {entry['ratio']}x; "
             f"{entry['users']:,} users x {entry['items']:,} items, {entry['interactions']:,} interactions",
             "", "| stage | seconds | peak RSS MiB |", "|---|---:|---:|"]
    lines += [f"| {stage} | {s['seconds']:.2f} | {s['peak_rss_mib']:.0f} |" for stage, s in entry["stages"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--json", default="benchmarks/results/fit_profile.json")
    parser.add_argument("--merge", action="store_true", help="keep the configs of an existing --json not redone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.json)
    document: dict[str, Any] = {"command": " ".join(["python", "benchmarks/fit_profile.py", *(argv or sys.argv[1:])]),
                                "git_commit": git_commit(), "torch_threads": torch.get_num_threads(), "configs": {}}
    if args.merge and out.is_file():
        document["configs"] = json.loads(out.read_text())["configs"]
    for name in args.configs:
        path = Path(name) if Path(name).is_file() else ROOT / name
        entry = profile_config(path, args.data_root)
        document["configs"][path.stem] = entry
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(table(path.stem, entry), "\n", flush=True)


if __name__ == "__main__":
    main()
