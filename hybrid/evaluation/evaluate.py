"""``hybrid-eval``: fit every model of a config on one split, rank, score, and write the evidence.

Writes to ``--out``: results.json, results.md, rankings_<model>.csv (user, rank, item, score),
test.csv (user, item), known_items.csv (user, item: what was masked), items.csv (item,
train_count, cold), users.csv (user, cold), recall_by_bucket.png, and the resolved config.
Splits with cold items add rankings_<model>.cold_only.csv and rankings_<model>.warm_only.csv (the
ALDI/GAR protocols: new items ranked among new items only, warm among warm). Every metric can be
recomputed from those files.

With ``eval.seeds`` > 1 (by default 3 on data sets of fewer than 5,000 users) the split is made,
and every model fitted and scored, once per seed: each seed's files go to ``seed_<s>/``, the first
seed's CSV files are also copied to ``--out``, and results.json holds the mean over seeds of every
metric, its sample standard deviation (ddof=1) as ``<metric>_std``, and ``per_seed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hybrid.config import EvalConfig, ExperimentConfig, SplitConfig, from_dict, load_config, to_dict
from hybrid.data.catalogue import catalogue_ids, filter_ratings, filter_training
from hybrid.data.datasets import DataBundle, load_dataset, load_files
from hybrid.data.interactions import ITEM, USER, Interactions, item_texts
from hybrid.data.splits import Split, make_split
from hybrid.device import resolve_device
from hybrid.evaluation.metrics import (
    BUCKETS,
    bucket_of,
    hit_matrix,
    metrics_from_hits,
    ranking_metrics,
    restrict_columns,
)
from hybrid.evaluation.provenance import git_commit, package_versions
from hybrid.evaluation.report import markdown_report, markdown_table, plot_buckets
from hybrid.llm.rerank_model import LLMReranked
from hybrid.models.base import FitData, Recommender
from hybrid.retrieval.build import build_model
from hybrid.retrieval.candidates import candidate_metrics, draw_candidates
from hybrid.retrieval.ranking import top_k_masked

logger = logging.getLogger(__name__)
# One line per model as it finishes; the CLI shows it even when the log shows warnings only.
progress = logging.getLogger("hybrid.progress")

# eval.seeds = None: this many seeds on data sets with fewer than AUTO_SEEDS_BELOW_USERS users, else 1.
AUTO_SEEDS, AUTO_SEEDS_BELOW_USERS = 3, 5000


@dataclass
class Prepared:
    """A split turned into indexed matrices, shared by every model of one run."""

    split: Split
    fit_data: FitData
    history: sp.csr_matrix  # [n_users, n_items] known at test time (train + valid + revealed)
    test: sp.csr_matrix  # [n_users, n_items]
    users: np.ndarray  # evaluated user indices
    groups: dict[str, tuple[np.ndarray, np.ndarray | None]]  # name -> (row mask over users, item mask)
    candidates: np.ndarray | None = None  # [n_users_evaluated, m] for the LLMRank protocol
    # name -> bool item mask [n_items]: rankings among those items only (cold_only / warm_only),
    # scored against the test items among them.
    restricted: dict[str, np.ndarray] = field(default_factory=dict)

    @functools.cached_property
    def fit_fingerprint(self) -> str:
        """:func:`fingerprint` of ``fit_data``, hashed once for every model row that needs it."""
        return fingerprint(self.fit_data)


def prepare(bundle: DataBundle, config: ExperimentConfig, device: torch.device) -> Prepared:
    """Validate the data, split it, and index every part over the catalogue (every user and item of
    the data set, :mod:`hybrid.data.catalogue`); filters see the training side only."""
    full = Interactions.from_frame(bundle.interactions)
    frame = filter_ratings(full.to_frame(), config.data)
    test_frame = None if bundle.test is None else bundle.test.rename(columns=str)
    split = filter_training(make_split(frame, config.split, test_frame), config.data)
    user_table = None if bundle.user_text is None else bundle.user_text.index
    user_ids, item_ids = catalogue_ids(frame, bundle.item_text.index, user_table)

    def index(part: pd.DataFrame) -> Interactions | None:
        if len(part) == 0:
            return None
        return Interactions.from_frame(part, user_ids=user_ids, item_ids=item_ids)

    train = index(split.train)
    assert train is not None  # Split refuses an empty train set
    valid, revealed, test = index(split.valid), index(split.revealed), index(split.test)
    assert test is not None
    history = train.matrix()
    for part in (valid, revealed):
        if part is not None:
            history = history + part.matrix()
    history = (history > 0).astype(np.float32).tocsr()
    user_text = None
    if bundle.user_text is not None:
        user_text = bundle.user_text.reindex(user_ids).fillna("").astype(str).tolist()
    fit_data = FitData(
        train=train, valid=valid, item_text=item_texts(bundle.item_text, item_ids),
        item_titles=bundle.item_titles.reindex(item_ids).fillna("").astype(str).tolist(),
        user_text=user_text, device=device, seed=config.seed,
    )
    test_matrix = test.matrix()
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0)
    if config.eval.cold_users_only:
        users = users[known_counts(fit_data, "user")[users] == 0]
        logger.info("evaluating only the %d test users with no training interactions", len(users))
    if config.eval.max_users is not None and len(users) > config.eval.max_users:
        rng = np.random.default_rng(config.seed)
        users = np.sort(rng.choice(users, config.eval.max_users, replace=False))
        logger.info("evaluating a seeded sample of %d test users (same for every model)", len(users))
    candidates = None
    if config.eval.candidates:
        candidates = draw_candidates(users, split.test, train, history, test_matrix, config.eval.candidates, config.seed)
    counts = known_counts(fit_data, "item")
    return Prepared(split, fit_data, history, test_matrix, users, _groups(split, counts, train.user_ids, users),
                    candidates, _restricted(split, counts))


def known_counts(data: FitData, axis: Literal["user", "item"]) -> np.ndarray:
    """int64 per user or item: interactions in train + validation (what every model may fit on);
    zero is what "new" / "cold" means in every report."""
    count = (lambda part: part.user_counts()) if axis == "user" else (lambda part: part.item_counts())
    total = count(data.train)
    return total if data.valid is None else total + count(data.valid)


def catalogue_record(prepared: Prepared) -> dict[str, int]:
    """``results.json``'s ``catalogue``: items, new items (no training interaction) and unsold new
    items (new, and no test interaction: the new items nobody buys)."""
    new = known_counts(prepared.fit_data, "item") == 0
    bought = np.asarray(prepared.test.getnnz(axis=0)).ravel() > 0
    return {"items": len(new), "new_items": int(new.sum()), "unsold_new_items": int((new & ~bought).sum())}


def _groups(split: Split, counts: np.ndarray, user_ids: pd.Index,
            users: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Which (users, items) each reported group covers, by train + validation ``counts`` per item.
    Cold-user splits group by user, others by item."""
    every_user = np.ones(len(users), bool)
    groups: dict[str, tuple[np.ndarray, np.ndarray | None]] = {"all": (every_user, None)}
    if split.cold_axis == "user":
        cold_rows = np.isin(user_ids[users], list(split.cold_users))
        groups["warm"], groups["cold"] = (~cold_rows, None), (cold_rows, None)
    elif split.cold_items:
        groups["warm"], groups["cold"] = (every_user, counts > 0), (every_user, counts == 0)
    labels = bucket_of(counts)
    for name, _, _ in BUCKETS:
        groups[f"bucket:{name}"] = (every_user, labels == name)
    return groups


def _restricted(split: Split, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The item masks of the ALDI/GAR protocols on a split with cold items: ``cold_only`` ranks the
    items with no train + validation interaction among themselves (unsold new items included),
    ``warm_only`` the others; none otherwise."""
    if split.cold_axis != "item" or not split.cold_items:
        return {}
    return {"cold_only": counts == 0, "warm_only": counts > 0}


def restricted_top(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """int64 [n, k]: a restricted ranking from :func:`~hybrid.retrieval.ranking.top_k_masked`, with -1 where
    there is no item (scored -inf: seen or outside the restriction, or fewer items than ``k``)."""
    out = np.full((len(items), k), -1, np.int64)
    out[:, : items.shape[1]] = np.where(scores > -np.inf, items, -1)
    return out


def padded_metrics(top: np.ndarray, relevant: sp.csr_matrix, ks: list[int]) -> dict[str, float]:
    """:func:`~hybrid.evaluation.metrics.ranking_metrics` of lists that may end in -1 (no item, never a hit)."""
    top_t = torch.as_tensor(np.asarray(top), dtype=torch.int64)
    hits = hit_matrix(top_t.clamp(min=0), relevant) & (top_t >= 0)
    return metrics_from_hits(hits, torch.as_tensor(np.diff(relevant.indptr), dtype=torch.int64), ks)


def evaluate_rankings(
    top: np.ndarray, prepared: Prepared, ks: list[int], restricted: dict[str, np.ndarray] | None = None,
    bootstrap: int = 0, seed: int = 0,
) -> dict[str, Any]:
    """Metrics for every group from the ranked item indices of ``prepared.users``, and for every
    restricted ranking in ``restricted`` (name of ``prepared.restricted`` -> :func:`restricted_top`)
    against the test items among its items; users with none of those are left out. ``bootstrap``:
    95% intervals over users for the groups (:func:`~hybrid.evaluation.metrics.metrics_from_hits`)."""
    relevant_all = prepared.test[prepared.users]
    result: dict[str, Any] = {"buckets": {}}
    for name, (rows, items) in prepared.groups.items():
        relevant = relevant_all if items is None else restrict_columns(relevant_all, items)
        metrics = ranking_metrics(top[rows], relevant[rows], ks, bootstrap, seed)
        if name.startswith("bucket:"):
            result["buckets"][name.split(":", 1)[1]] = metrics
        else:
            result[name] = metrics
    for name, ranked in (restricted or {}).items():
        result[name] = padded_metrics(ranked, restrict_columns(relevant_all, prepared.restricted[name]), ks)
    return result


def fingerprint(data: FitData) -> str:
    """A digest of what fitting sees (interactions, id maps, texts, seed, device): equal digests,
    equal fitted models."""
    digest = hashlib.sha256()
    for part in (data.train, data.valid):
        if part is not None:
            for array in (part.users, part.items):
                digest.update(np.ascontiguousarray(array).tobytes())
            digest.update("\x1f".join(map(str, [*part.user_ids, *part.item_ids])).encode())
    for texts in (data.item_text, data.item_titles, data.user_text):
        digest.update(b"\x1e" + "\x1f".join(texts or []).encode())
    digest.update(f"{data.seed} {data.device}".encode())
    return digest.hexdigest()


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
    start = time.perf_counter()
    # One scoring pass: the full ranking and the restricted ones (cold_only / warm_only) from the same scores.
    ranked = top_k_masked(model, prepared.users, prepared.history, k_max,
                          {"all": None, **prepared.restricted}, config.eval.batch_size, tie_seed=config.seed)
    top, scores = ranked.pop("all")
    restricted = {group: restricted_top(items, values, k_max) for group, (items, values) in ranked.items()}
    rank_seconds = time.perf_counter() - start
    result = evaluate_rankings(top, prepared, config.eval.k, restricted, config.eval.bootstrap, config.seed)
    result.update(fit_seconds=round(fit_seconds, 3), rank_seconds=round(rank_seconds, 3), chosen=model.chosen())
    if prepared.candidates is not None:
        result["candidates"] = candidate_metrics(model, prepared.users, prepared.history, prepared.candidates)
    write_rankings(prepared, top, scores, out / f"rankings_{name}.csv")
    for group, (_, values) in ranked.items():
        write_rankings(prepared, restricted[group], values, out / f"rankings_{name}.{group}.csv")
    return result


def write_rankings(prepared: Prepared, top: np.ndarray, scores: np.ndarray, path: Path) -> None:
    """user, rank, item, score of each evaluated user's list; -1 entries (no item) are left out."""
    train = prepared.fit_data.train
    scores = np.pad(scores, ((0, 0), (0, top.shape[1] - scores.shape[1])), constant_values=-np.inf)
    keep = (top >= 0).ravel()
    pd.DataFrame({
        USER: np.repeat(train.user_ids[prepared.users], top.shape[1])[keep],
        "rank": np.tile(np.arange(1, top.shape[1] + 1), len(prepared.users))[keep],
        ITEM: train.item_ids[top.ravel()[keep]],
        "score": scores.ravel()[keep],
    }).to_csv(path, index=False)


def write_evidence(prepared: Prepared, out: Path) -> None:
    """The files that let anyone recompute every metric without this package."""
    train = prepared.fit_data.train
    test = prepared.test[prepared.users].tocoo()
    pd.DataFrame({USER: train.user_ids[prepared.users[test.row]], ITEM: train.item_ids[test.col]}).to_csv(
        out / "test.csv", index=False
    )
    known = prepared.history[prepared.users].tocoo()
    pd.DataFrame({USER: train.user_ids[prepared.users[known.row]], ITEM: train.item_ids[known.col]}).to_csv(
        out / "known_items.csv", index=False
    )
    counts = known_counts(prepared.fit_data, "item")
    pd.DataFrame({ITEM: train.item_ids, "train_count": counts, "cold": counts == 0}).to_csv(
        out / "items.csv", index=False
    )
    pd.DataFrame({
        USER: train.user_ids[prepared.users],
        "cold": np.isin(train.user_ids[prepared.users], list(prepared.split.cold_users)),
    }).to_csv(out / "users.csv", index=False)


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


def provenance(device: torch.device) -> dict[str, Any]:
    """What a result depends on besides its config: package versions, git commit, threads, device."""
    versions = package_versions(("hybrid-coldstart", "torch", "numpy", "scipy", "pandas", "sentence-transformers",
                                 "transformers", "torch-geometric"))
    return {"package_versions": versions, "git_commit": git_commit(), "torch_threads": torch.get_num_threads(),
            "device": str(device)}


def load_bundle(config: ExperimentConfig, data_root: str | None) -> DataBundle:
    """The config's data: its own files (``data.interactions``) or a named data set under ``data_root``."""
    if config.data.interactions is not None:
        return load_files(config.data)
    return load_dataset(config.data.name, data_root, config.data.path)


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


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes (Linux reports kilobytes, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def main(argv: list[str] | None = None) -> None:
    from hybrid.data.datasets import DATASET_NAMES
    from hybrid.models.base import model_names

    parser = argparse.ArgumentParser(
        prog="hybrid-eval", description=__doc__.splitlines()[0],
        epilog=f"models: {', '.join(model_names())}. data sets: {', '.join(DATASET_NAMES)}. "
               f"packaged configs (--config NAME): {', '.join(packaged_configs())}.",
    )
    parser.add_argument("--config", required=True, help="YAML experiment config: a path, or a packaged config's name")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"),
                        help="folder holding the data sets (default: $HYBRID_DATA_ROOT)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--models", default=None, help="comma-separated model names, overriding the config")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the INFO detail (what each fit chose)")
    parser.add_argument("--log-level", default=None, help="log level (default WARNING, or INFO with -v)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
    parser.add_argument("--json", default=None, help="also write results.json here, with the command, wall "
                        "time and peak memory (e.g. benchmarks/results/eval_NAME.json for the README)")
    args = parser.parse_args(argv)
    level = (args.log_level or ("INFO" if args.verbose else "WARNING")).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    show_progress(level)
    try:
        path = resolve_config(args.config)
        config = load_config(path)
        out = Path(args.out or Path("runs") / path.stem)
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        start = time.perf_counter()
        results = run(config, args.data_root, out, args.device, models)
    except (ValueError, FileNotFoundError, PermissionError, KeyError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        parser.exit(2, f"hybrid-eval: error: {message}\n")
    print(markdown_report(results))
    print(f"\nwrote {out}/results.json, results.md, rankings_*.csv, recall_by_bucket.png")
    print(f"peak memory (max resident set) {peak_rss_bytes() / 2**30:.2f} GiB")
    if args.json:
        command = "hybrid-eval " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        record = {"command": command, "wall_seconds": round(time.perf_counter() - start, 1),
                  "peak_rss_bytes": peak_rss_bytes(), **results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2))


def show_progress(level: str) -> None:
    """The per-model progress lines on stderr at log level WARNING (at INFO the log shows them;
    above WARNING nothing is shown)."""
    if level != "WARNING" or progress.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False


def packaged_configs() -> list[str]:
    """Names of the configs shipped in the ``configs`` package."""
    from importlib import resources

    return sorted(p.name.removesuffix(".yaml") for p in resources.files("configs").iterdir() if p.name.endswith(".yaml"))


def resolve_config(name: str) -> Path:
    """A config path as given, or a packaged config by name (``default`` -> configs/default.yaml)."""
    from importlib import resources

    path = Path(name)
    if path.exists():
        return path
    packaged = resources.files("configs") / f"{name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and packaged.is_file():
        return Path(str(packaged))
    raise FileNotFoundError(f"config {name!r} not found: give a YAML path or one of the packaged configs "
                            f"{packaged_configs()}")


if __name__ == "__main__":
    main()
