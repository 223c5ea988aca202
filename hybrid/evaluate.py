"""``hybrid-eval``: fit every model of a config on one split, rank, score, and write the evidence.

Writes to ``--out``: results.json, results.md, rankings_<model>.csv (user, rank, item, score),
test.csv (user, item), known_items.csv (user, item: what was masked), items.csv (item,
train_count, cold), users.csv (user, cold), recall_by_bucket.png, and the resolved config.
Every metric can be recomputed from those files.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from hybrid.candidates import candidate_metrics, draw_candidates
from hybrid.config import EvalConfig, ExperimentConfig, SplitConfig, from_dict, load_config, to_dict
from hybrid.data import ITEM, USER, Interactions, item_texts
from hybrid.datasets import DataBundle, load_dataset
from hybrid.device import resolve_device
from hybrid.metrics import BUCKETS, bucket_of, ranking_metrics, restrict_columns
from hybrid.models.base import FitData, Recommender, make_model
from hybrid.models.llm_rerank import LLMReranked
from hybrid.ranking import top_k
from hybrid.report import markdown_report, markdown_table, plot_buckets
from hybrid.splits import Split, make_split

logger = logging.getLogger(__name__)


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

    @functools.cached_property
    def fit_fingerprint(self) -> str:
        """:func:`fingerprint` of ``fit_data``, hashed once for every model row that needs it."""
        return fingerprint(self.fit_data)


def filter_frame(frame: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """Apply the data section's rating threshold and k-core filters, logging what they remove."""
    data = config.data
    if data.min_rating is not None:
        kept = frame[frame["weight"] >= data.min_rating]
        logger.info("min_rating %.1f: kept %d of %d interactions", data.min_rating, len(kept), len(frame))
        frame = kept
    while data.min_user_interactions or data.min_item_interactions:
        users = frame.groupby(USER)[ITEM].transform("size") >= data.min_user_interactions
        items = frame.groupby(ITEM)[USER].transform("size") >= data.min_item_interactions
        keep = users & items
        if keep.all():
            break
        logger.info("k-core filter removed %d interactions", int((~keep).sum()))
        frame = frame[keep]
    return frame


def prepare(bundle: DataBundle, config: ExperimentConfig, device: torch.device) -> Prepared:
    """Validate the data, split it, and index every part over one id universe."""
    full = Interactions.from_frame(bundle.interactions)
    frame = filter_frame(full.to_frame(), config)
    test_frame = None if bundle.test is None else bundle.test.rename(columns=str)
    split = make_split(frame, config.split, test_frame)
    user_ids = pd.Index(pd.unique(pd.concat([frame[USER], split.test[USER]])))
    item_ids = pd.Index(pd.unique(pd.concat([frame[ITEM], split.test[ITEM]])))

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
        users = users[train.user_counts()[users] == 0]
        logger.info("evaluating only the %d test users with no training interactions", len(users))
    if config.eval.max_users is not None and len(users) > config.eval.max_users:
        rng = np.random.default_rng(config.seed)
        users = np.sort(rng.choice(users, config.eval.max_users, replace=False))
        logger.info("evaluating a seeded sample of %d test users (same for every model)", len(users))
    candidates = None
    if config.eval.candidates:
        candidates = draw_candidates(users, split.test, train, history, test_matrix, config.eval.candidates, config.seed)
    return Prepared(split, fit_data, history, test_matrix, users, _groups(split, train, users), candidates)


def _groups(split: Split, train: Interactions, users: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Which (users, items) each reported group covers. Cold-user splits group by user, others by item."""
    every_user = np.ones(len(users), bool)
    groups: dict[str, tuple[np.ndarray, np.ndarray | None]] = {"all": (every_user, None)}
    counts = train.item_counts()
    if split.cold_axis == "user":
        cold_rows = np.isin(train.user_ids[users], list(split.cold_users))
        groups["warm"], groups["cold"] = (~cold_rows, None), (cold_rows, None)
    elif split.cold_items:
        groups["warm"], groups["cold"] = (every_user, counts > 0), (every_user, counts == 0)
    labels = bucket_of(counts)
    for name, _, _ in BUCKETS:
        groups[f"bucket:{name}"] = (every_user, labels == name)
    return groups


def evaluate_rankings(
    top: np.ndarray, prepared: Prepared, ks: list[int]
) -> dict[str, Any]:
    """Metrics for every group from the ranked item indices of ``prepared.users``."""
    relevant_all = prepared.test[prepared.users]
    result: dict[str, Any] = {"buckets": {}}
    for name, (rows, items) in prepared.groups.items():
        relevant = relevant_all if items is None else restrict_columns(relevant_all, items)
        metrics = ranking_metrics(top[rows], relevant[rows], ks)
        if name.startswith("bucket:"):
            result["buckets"][name.split(":", 1)[1]] = metrics
        else:
            result[name] = metrics
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
    model = make_model(name, params)
    start = time.perf_counter()
    if isinstance(model, LLMReranked):
        retriever_name = model.config.retriever
        retriever_params = model.config.retriever_params or config.params.get(retriever_name) or {}
        retriever, _ = fitted_model(retriever_name, retriever_params, config, prepared, fitted)
        start = time.perf_counter()
        model.fit(prepared.fit_data, retriever=retriever)
    else:
        model.fit(prepared.fit_data)
    fitted[key] = (model, time.perf_counter() - start)
    return fitted[key]


def run_model(name: str, config: ExperimentConfig, prepared: Prepared, out: Path, bar: tqdm,
              fitted: dict[tuple[str, str, str], tuple[Recommender, float]]) -> dict[str, Any]:
    """Fit (or reuse from ``fitted``), rank and score one model; writes its rankings CSV."""
    k_max = max(config.eval.k)
    bar.set_description(f"{name}: fit")
    model, fit_seconds = fitted_model(name, config.params.get(name) or {}, config, prepared, fitted)
    bar.set_description(f"{name}: rank")
    start = time.perf_counter()
    top, scores = top_k(model, prepared.users, prepared.history, k_max, config.eval.batch_size)
    rank_seconds = time.perf_counter() - start
    bar.set_description(f"{name}: score")
    result = evaluate_rankings(top, prepared, config.eval.k)
    result.update(fit_seconds=round(fit_seconds, 3), rank_seconds=round(rank_seconds, 3))
    if prepared.candidates is not None:
        bar.set_description(f"{name}: candidates")
        result["candidates"] = candidate_metrics(model, prepared.users, prepared.history, prepared.candidates)
    train = prepared.fit_data.train
    pd.DataFrame({
        USER: np.repeat(train.user_ids[prepared.users], top.shape[1]),
        "rank": np.tile(np.arange(1, top.shape[1] + 1), len(prepared.users)),
        ITEM: train.item_ids[top.ravel()],
        "score": scores.ravel(),
    }).to_csv(out / f"rankings_{name}.csv", index=False)
    return result


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
    counts = train.item_counts()
    pd.DataFrame({ITEM: train.item_ids, "train_count": counts, "cold": counts == 0}).to_csv(
        out / "items.csv", index=False
    )
    pd.DataFrame({
        USER: train.user_ids[prepared.users],
        "cold": np.isin(train.user_ids[prepared.users], list(prepared.split.cold_users)),
    }).to_csv(out / "users.csv", index=False)


def run_split(config: ExperimentConfig, bundle: DataBundle, out: Path,
              fitted: dict[tuple[str, str, str], tuple[Recommender, float]] | None = None) -> dict[str, Any]:
    """One split: fit and score every model; writes the files listed in the module docstring."""
    fitted = {} if fitted is None else fitted
    device = resolve_device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(bundle, config, device)
    write_evidence(prepared, out)
    results: dict[str, Any] = {
        "dataset": bundle.name, "split": prepared.split.name, "cold_axis": prepared.split.cold_axis,
        "k": list(config.eval.k),
        "config": to_dict(config), "device": str(device), "n_test_users": len(prepared.users),
        "models": {},
    }
    with tqdm(config.models, unit="model", disable=not logger.isEnabledFor(logging.WARNING)) as bar:
        for name in bar:
            results["models"][name] = run_model(name, config, prepared, out, bar, fitted)
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


def run(config: ExperimentConfig, data_root: str | None, out: Path, device: str | None = None,
        models: list[str] | None = None) -> dict[str, Any]:
    """Run an experiment (each of its scenarios in turn, into ``out/<scenario>``); returns the results."""
    if models:
        config.models = models
    if device:
        config.device = device
    bundle = load_dataset(config.data.name, data_root, config.data.path)
    if not config.scenarios:
        return run_split(config, bundle, out)
    results: dict[str, Any] = {"scenarios": {}}
    fitted: dict[tuple[str, str, str], tuple[Recommender, float]] = {}
    for name, overrides in config.scenarios.items():
        results["scenarios"][name] = run_split(scenario_config(config, name, overrides), bundle, out / name, fitted)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown_report(results))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hybrid-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML experiment config (see configs/)")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"),
                        help="folder holding the data sets (default: $HYBRID_DATA_ROOT)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--models", default=None, help="comma-separated model names, overriding the config")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    results = run(config, args.data_root, out, args.device, models)
    print(markdown_report(results))
    print(f"\nwrote {out}/results.json, results.md, rankings_*.csv, recall_by_bucket.png")


if __name__ == "__main__":
    main()
