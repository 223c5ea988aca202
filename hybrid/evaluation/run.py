"""Running an experiment: fit each model on each seed's split, rank, score, average over seeds, per scenario."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.config import EvalConfig, ExperimentConfig, SplitConfig, from_dict, to_dict
from hybrid.data.datasets import DataBundle
from hybrid.data.interactions import USER
from hybrid.device import resolve_device
from hybrid.evaluation.evidence import write_evidence, write_rankings
from hybrid.evaluation.explained import explained_examples
from hybrid.evaluation.prepare import (
    Prepared,
    catalogue_record,
    known_counts,
    load_bundle,
    prepare,
)
from hybrid.evaluation.provenance import provenance
from hybrid.evaluation.report import markdown_report, markdown_table, plot_buckets
from hybrid.evaluation.rolling import run_replay
from hybrid.evaluation.scoring import evaluate_rankings, restricted_top
from hybrid.evaluation.zero_history import as_practitioner
from hybrid.llm.rerank_model import LLMReranked
from hybrid.models.base import Recommender
from hybrid.retrieval.build import build_model
from hybrid.retrieval.candidates import candidate_metrics
from hybrid.retrieval.ranking import top_k_masked

logger = logging.getLogger(__name__)


# One line per model as it finishes; the CLI shows it even when the log shows warnings only.
progress = logging.getLogger("hybrid.progress")

# eval.seeds = None: this many seeds on data sets with fewer than AUTO_SEEDS_BELOW_USERS users, else 1.
AUTO_SEEDS, AUTO_SEEDS_BELOW_USERS = 3, 5000


def fitted_model(name: str, params: dict[str, Any], config: ExperimentConfig, prepared: Prepared,
                 fitted: dict[tuple[str, str, str], tuple[Recommender, float]]) -> tuple[Recommender, float]:
    """``name`` fitted with ``params`` on ``prepared``'s training data, from ``fitted`` when it
    already was (a scenario that changes only what test users reveal, or the evaluation; the
    retriever of an ``llm`` row); returns it and its fit
    seconds. An LLM row's retriever with no parameters of its own gets its row's (``hybrid+llm``
    reranks the very ``hybrid`` of the table), and its fit seconds exclude a reused retriever."""
    key = (name, prepared.fit_fingerprint, json.dumps(params, sort_keys=True))
    if key in fitted:
        return fitted[key]
    model = build_model(name, params)
    start = time.perf_counter()
    if isinstance(model, LLMReranked):
        retriever_name = model.config.retriever
        retriever_params = model.config.retriever_params or config.params.get(retriever_name) or {}
        retriever, _ = fitted_model(retriever_name, retriever_params, config, prepared, fitted)
        model = build_model(name, {**params, "retriever_params": retriever_params})  # its rehearsal refits the same
        start = time.perf_counter()
        model.fit(prepared.fit_data, retriever=retriever)
    else:
        model.fit(prepared.fit_data)
    fitted[key] = (model, time.perf_counter() - start)
    return fitted[key]


def run_model(name: str, config: ExperimentConfig, prepared: Prepared, out: Path,
              fitted: dict[tuple[str, str, str], tuple[Recommender, float]]) -> dict[str, Any]:
    """Fit (or reuse from ``fitted``), rank and score one model; writes its rankings CSV."""
    k_max = max(config.eval.k)
    model, fit_seconds = fitted_model(name, config.params.get(name) or {}, config, prepared, fitted)
    ranker, zero_history = as_practitioner(model, known_counts(prepared.fit_data, "item"))
    start = time.perf_counter()
    # One scoring pass: the full ranking and the restricted ones (cold_only / warm_only) from the same scores.
    ranked = top_k_masked(ranker, prepared.users, prepared.history, k_max,
                          {"all": None, **prepared.restricted}, config.eval.batch_size, tie_seed=config.seed)
    top, scores = ranked.pop("all")
    restricted = {group: restricted_top(items, values, k_max) for group, (items, values) in ranked.items()}
    rank_seconds = time.perf_counter() - start
    result = evaluate_rankings(top, prepared, config.eval.k, restricted, config.eval.bootstrap, config.seed)
    result.update(fit_seconds=round(fit_seconds, 3), rank_seconds=round(rank_seconds, 3), chosen=model.chosen(),
                  zero_history=zero_history)
    if prepared.candidates is not None:
        result["candidates"] = candidate_metrics(ranker, prepared.users, prepared.history, prepared.candidates)
    write_rankings(prepared, top, scores, out / f"rankings_{name}.csv")
    examples = explained_examples(model, prepared, top, restricted.get("cold_only"))  # the hybrid only
    if examples:
        result["explained"] = examples
    for group, (_, values) in ranked.items():
        write_rankings(prepared, restricted[group], values, out / f"rankings_{name}.{group}.csv")
    return result


def resolve_seeds(config: EvalConfig, bundle: DataBundle) -> int:
    """``config.seeds``, or when None :data:`AUTO_SEEDS` for a data set with fewer than
    :data:`AUTO_SEEDS_BELOW_USERS` users in its interactions, else 1."""
    if config.seeds is None:
        n_users = bundle.interactions[USER].nunique()
        seeds = AUTO_SEEDS if n_users < AUTO_SEEDS_BELOW_USERS else 1
        logger.info("eval.seeds: %d (auto, %d users)", seeds, n_users)
        return seeds
    if isinstance(config.seeds, bool) or not isinstance(config.seeds, int) or config.seeds < 1:
        raise ValueError(f"eval.seeds must be a positive integer or null, got {config.seeds!r}")
    return config.seeds


def seed_config(config: ExperimentConfig, s: int) -> ExperimentConfig:
    """``config`` for the ``s``-th seed: split seed and experiment seed shifted by ``s``, one seed."""
    return dataclasses.replace(
        config, seed=config.seed + s, split=dataclasses.replace(config.split, seed=config.split.seed + s),
        eval=dataclasses.replace(config.eval, seeds=1),
    )


# Keys averaged over seeds without a _std beside them.
NO_STD = frozenset({"users", "fit_seconds", "rank_seconds"})


def mean_over_seeds(values: list[Any]) -> Any:
    """Per-seed results merged key by key: numbers become their mean, and metrics gain
    ``<key>_std``, the sample standard deviation (ddof=1; NaN from a single value); nested dicts
    recurse; a key missing from some seeds is averaged over those that have it; ``chosen`` (what
    each fit chose) is kept per seed; other values are the first seed's."""
    if all(isinstance(v, dict) for v in values):
        out: dict[str, Any] = {}
        for key in dict.fromkeys(k for v in values for k in v):
            present = [v[key] for v in values if key in v]
            if key == "chosen":  # what each seed's fit chose: a record, not a quantity to average
                out[key] = {"per_seed": present}
                continue
            out[key] = mean_over_seeds(present)
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
            if numeric and key not in NO_STD and not key.endswith(("_lo", "_hi")):
                out[f"{key}_std"] = float(np.std(present, ddof=1)) if len(present) > 1 else float("nan")
        return out
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        if all(v == values[0] for v in values):
            return values[0]
        return float(np.mean(values))
    return values[0]


def run_split(config: ExperimentConfig, bundle: DataBundle, out: Path,
              fitted: dict[tuple[str, str, str], tuple[Recommender, float]] | None = None) -> dict[str, Any]:
    """One split, or one per seed (``eval.seeds``, see :func:`resolve_seeds`) averaged; writes the
    files listed in the module docstring."""
    fitted = {} if fitted is None else fitted
    if config.split.kind == "replay":  # one deterministic pass over time; each step refits every model
        results = run_replay(config, bundle, out, run_model)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "results.md").write_text(markdown_table(results))
        plot_buckets(results, out / "recall_by_bucket.png")
        return results
    seeds = resolve_seeds(config.eval, bundle)
    if seeds == 1:
        return run_one_split(config, bundle, out, fitted)
    per_seed = [run_one_split(seed_config(config, s), bundle, out / f"seed_{s}", fitted) for s in range(seeds)]
    for path in sorted((out / "seed_0").glob("*.csv")):
        shutil.copyfile(path, out / path.name)
    first = per_seed[0]
    resolved = dataclasses.replace(config, eval=dataclasses.replace(config.eval, seeds=seeds))
    results: dict[str, Any] = {
        "dataset": first["dataset"], "split": first["split"], "cold_axis": first["cold_axis"], "k": first["k"],
        "config": to_dict(resolved), "device": first["device"], "provenance": first.get("provenance"),
        "n_test_users": mean_over_seeds([r["n_test_users"] for r in per_seed]),
        "catalogue": mean_over_seeds([r["catalogue"] for r in per_seed]),
        "seeds": [config.split.seed + s for s in range(seeds)],
        "splits": [r["split"] for r in per_seed],
        "n_test_users_per_seed": [r["n_test_users"] for r in per_seed],
        "models": {},
    }
    for name in first["models"]:
        runs = [r["models"][name] for r in per_seed]
        merged = mean_over_seeds(runs)
        for key in ("fit_seconds", "rank_seconds"):
            merged[key] = round(float(np.mean([r[key] for r in runs])), 3)
        merged["per_seed"] = runs
        results["models"][name] = merged
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_table(results))
    plot_buckets(results, out / "recall_by_bucket.png")
    return results


def run_one_split(config: ExperimentConfig, bundle: DataBundle, out: Path,
                  fitted: dict[tuple[str, str, str], tuple[Recommender, float]]) -> dict[str, Any]:
    """One split with ``config``'s seeds: fit and score every model; writes the files listed in the
    module docstring."""
    device = resolve_device(config.device)
    prepared = prepare(bundle, config, device)  # a bad split fails here, before any file is written
    out.mkdir(parents=True, exist_ok=True)
    write_evidence(prepared, out)
    results: dict[str, Any] = {
        "dataset": bundle.name, "split": prepared.split.name, "cold_axis": prepared.split.cold_axis,
        "k": list(config.eval.k),
        "config": to_dict(config), "device": str(device), "n_test_users": len(prepared.users),
        "catalogue": catalogue_record(prepared), "provenance": provenance(device), "models": {},
    }
    for name in config.models:
        results["models"][name] = entry = run_model(name, config, prepared, out, fitted)
        progress.info("%s: fit %.1f s, rank %.1f s", name, entry["fit_seconds"], entry["rank_seconds"])
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_table(results))
    plot_buckets(results, out / "recall_by_bucket.png")
    return results


def scenario_config(config: ExperimentConfig, name: str, overrides: dict[str, Any]) -> ExperimentConfig:
    """``config`` with one scenario's ``split`` / ``eval`` fields and ``models`` list replaced."""
    where = f"scenarios.{name}"
    unknown = sorted(set(overrides) - {"split", "eval", "models"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; a scenario may set split, eval and models")
    split = from_dict(SplitConfig, {**dataclasses.asdict(config.split), **overrides.get("split", {})}, f"{where}.split")
    evaluation = from_dict(EvalConfig, {**dataclasses.asdict(config.eval), **overrides.get("eval", {})}, f"{where}.eval")
    return dataclasses.replace(config, split=split, eval=evaluation, models=list(overrides.get("models", config.models)),
                               scenarios={})


def check_experiment(config: ExperimentConfig) -> None:
    """Everything that can be checked before data is read or a model fitted: every model name and
    its parameters (each model's config validates them), ``eval.k``, every scenario's overrides."""
    configs = [config] + [scenario_config(config, name, o) for name, o in config.scenarios.items()]
    for part in configs:
        if not part.eval.k or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in part.eval.k):
            raise ValueError(f"eval.k must be a list of positive integers, got {part.eval.k!r}")
        for name in part.models:
            build_model(name, config.params.get(name) or {})


def run(config: ExperimentConfig, data_root: str | None, out: Path, device: str | None = None,
        models: list[str] | None = None) -> dict[str, Any]:
    """Run an experiment (each of its scenarios in turn, into ``out/<scenario>``); returns the results."""
    if models:
        config.models = models
    if device:
        config.device = device
    check_experiment(config)
    bundle = load_bundle(config, data_root)
    if not config.scenarios:
        return run_split(config, bundle, out)
    results: dict[str, Any] = {"scenarios": {}}
    fitted: dict[tuple[str, str, str], tuple[Recommender, float]] = {}
    for name, overrides in config.scenarios.items():
        results["scenarios"][name] = run_split(scenario_config(config, name, overrides), bundle, out / name, fitted)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_report(results))
    return results
