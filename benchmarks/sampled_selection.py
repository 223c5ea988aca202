"""Which neighbourhood ``lightgcn_sampled`` uses by default, chosen on validation data only.

For each shared data set below, full LightGCN and ``lightgcn_sampled`` with each neighbourhood
(``walks``: PinSage's top-T visited nodes, any odd number of hops away; ``edges``: the node's own
edges, cut to the T most visited) are fitted with the same seeds and scored on data carved from
the training side, never the test set:

    ml100k_temporal               nested temporal: the config's training period alone, split again
                                  at its own 80% quantile; scored on that inner "test" (3 seeds)
    amazon_scientific_cold_items  each user's last 2 training interactions held out (10 seeds)
    gowalla_lightgcn              2 per user held out of train.txt, 10 epochs of the Gowalla
                                  benchmark's recipe (one seed; the fit takes minutes)

The default is the neighbourhood whose worst ratio to full LightGCN, over the data sets and
Recall@20 / NDCG@20, is highest: the issue's target is a floor (sampled ≥ 97% of full), so the
choice maximises the floor. Writes JSON (``--json``) and prints a table.

    python benchmarks/sampled_selection.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from hybrid.config import ExperimentConfig, load_config  # noqa: E402
from hybrid.data.splits import make_split  # noqa: E402
from hybrid.evaluation.evaluate import resolve_config  # noqa: E402
from hybrid.evaluation.prepare import load_bundle, prepare  # noqa: E402
from hybrid.evaluation.provenance import provenance  # noqa: E402
from hybrid.evaluation.run import fitted_model  # noqa: E402
from hybrid.evaluation.train_command import valid_metrics  # noqa: E402
from hybrid.metrics import ranking_metrics  # noqa: E402
from hybrid.models.base import import_builtins  # noqa: E402
from hybrid.retrieval.ranking import top_k_masked  # noqa: E402

import_builtins()  # every built-in model's module now: the run uses one version of their code

GOWALLA_RECIPE = {"epochs": 10, "batch_size": 16384, "lr": 0.01, "eval_every": 10, "patience": 10}
# data set: (config, how it is scored, seeds, held out per user, extra parameters for every model)
DATASETS: dict[str, tuple[str, str, int, int, dict[str, Any]]] = {
    "ml-100k": ("ml100k_temporal", "nested_temporal", 3, 1, {}),
    "amazon-scientific": ("amazon_scientific_cold_items", "valid", 10, 2, {}),
    "gowalla": ("gowalla_lightgcn", "valid", 1, 2, GOWALLA_RECIPE),
}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("lightgcn", {}),
    "walks": ("lightgcn_sampled", {"neighbourhood": "walks"}),
    "edges": ("lightgcn_sampled", {"neighbourhood": "edges"}),
}
METRICS = ("recall@20", "ndcg@20")


def nested(config: ExperimentConfig, bundle: Any) -> Any:
    """``bundle`` restricted to the training side (train + valid) of ``config``'s split."""
    outer = make_split(bundle.interactions, config.split, None)
    pairs = pd.concat([outer.train, outer.valid])[["user", "item"]]
    rows = pd.MultiIndex.from_frame(bundle.interactions[["user", "item"]]).isin(pd.MultiIndex.from_frame(pairs))
    return dataclasses.replace(bundle, interactions=bundle.interactions[rows].reset_index(drop=True))


def score(model: Any, prepared: Any, how: str, seed: int) -> dict[str, float]:
    """Recall@20 / NDCG@20 on the inner test (nested temporal) or on the validation set."""
    if how == "valid":
        found = valid_metrics(model, prepared.fit_data)
        return {key: float(found[f"valid_{key}"]) for key in METRICS}
    top, _ = top_k_masked(model, prepared.users, prepared.history, 20, {"all": None}, tie_seed=seed)["all"]
    found = ranking_metrics(top, prepared.test[prepared.users], [20])
    return {key: float(found[key]) for key in METRICS}


def run_dataset(name: str, data_root: str | None) -> dict[str, Any]:
    config_name, how, seeds, held_out, extra = DATASETS[name]
    config = load_config(resolve_config(config_name))
    config = dataclasses.replace(config, split=dataclasses.replace(config.split, valid_per_user=held_out))
    bundle = load_bundle(config, data_root)
    if how == "nested_temporal":
        bundle = nested(config, bundle)
    per_seed: dict[str, list[dict[str, float]]] = {label: [] for label in VARIANTS}
    start = time.perf_counter()
    for s in range(seeds):
        seeded = dataclasses.replace(config, seed=config.seed + s,
                                     split=dataclasses.replace(config.split, seed=config.split.seed + s))
        prepared = prepare(bundle, seeded, torch.device("cpu"))
        for label, (model_name, params) in VARIANTS.items():
            model, _ = fitted_model(model_name, {**extra, **params}, seeded, prepared, {})
            per_seed[label].append(score(model, prepared, how, seeded.seed))
            logging.info("%s seed %d %s: %s", name, s, label, per_seed[label][-1])
    means = {label: {key: float(np.mean([r[key] for r in rows])) for key in METRICS} for label, rows in per_seed.items()}
    ratios = {label: {key: means[label][key] / means["full"][key] for key in METRICS} for label in VARIANTS}
    return {"config": config_name, "scored_on": how, "seeds": seeds, "held_out_per_user": held_out,
            "extra_params": extra, "mean": means, "ratio_to_full": ratios, "per_seed": per_seed,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "sampled_selection.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("hybrid", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    start = time.perf_counter()
    results = {name: run_dataset(name, args.data_root) for name in args.datasets.split(",")}
    floors = {label: min(r["ratio_to_full"][label][key] for r in results.values() for key in METRICS)
              for label in VARIANTS if label != "full"}
    chosen = max(floors, key=floors.get)
    record = {"command": "python benchmarks/sampled_selection.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "wall_seconds": round(time.perf_counter() - start, 1), "datasets": results,
              "worst_ratio": floors, "chosen": chosen, "provenance": provenance(torch.device("cpu"))}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2))
    print(f"{'data set':20s} {'variant':6s} {'Recall@20':>10s} {'NDCG@20':>10s} {'ratio R':>8s} {'ratio N':>8s}")
    for name, r in results.items():
        for label in VARIANTS:
            m, q = r["mean"][label], r["ratio_to_full"][label]
            print(f"{name:20s} {label:6s} {m['recall@20']:10.4f} {m['ndcg@20']:10.4f} {q['recall@20']:8.3f} {q['ndcg@20']:8.3f}")
    print("worst ratio to full:", {k: round(v, 3) for k, v in floors.items()}, "-> default neighbourhood:", chosen)


if __name__ == "__main__":
    main()
