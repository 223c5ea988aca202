"""The time-true replay (rolling origin): every model refitted before each step, scored on the step.

A single temporal cut fits once and tests a whole period, so items and users that appear during it
are either invisible or known in advance, and the 1-19 regime, where new items earn their first
interactions, is barely tested. Here the test period is cut into steps (``split.kind: replay``);
at each step every model is fitted on everything before it, ranks the step's active users over the
catalogue of that moment (items that appeared in earlier steps included, with their first
interactions), and is scored on the step. Users first seen in the step are zero-history users.

The results pool every user-step: each metric is the mean over user-steps, for all users, by user
bucket (known interactions at the step's start: 0, 1-4, 5-19, 20+) and by the count bucket of the
test items at the step's start. ``steps`` keeps each step's split, catalogue, figures and fit seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hybrid.config import ExperimentConfig, to_dict
from hybrid.data.catalogue import filter_ratings, filter_training
from hybrid.data.datasets import DataBundle
from hybrid.data.splits import replay_splits
from hybrid.device import resolve_device
from hybrid.evaluation.evidence import write_evidence
from hybrid.evaluation.prepare import canonical_frame, catalogue_record, prepare_split
from hybrid.evaluation.provenance import provenance

logger = logging.getLogger(__name__)

# Per-model keys that hold groups of metrics (pooled over steps), and nested ones by bucket.
GROUP_KEYS = ("all", "warm", "cold")
NESTED_KEYS = ("buckets", "user_buckets")


def pool_metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of several steps' groups pooled into one mean over all their users (each step's
    mean weighted by its ``users``); groups with no user are left out; empty when none has any."""
    parts = [p for p in parts if p.get("users")]
    if not parts:
        return {}
    users = sum(p["users"] for p in parts)
    keys = [k for k in parts[0] if k != "users" and "@" in k]
    pooled: dict[str, Any] = {k: sum(p[k] * p["users"] for p in parts) / users for k in keys}
    pooled["users"] = users
    return pooled


def pool_model(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's results over every step (:func:`pool_metrics` for each group), with its fit and
    rank seconds summed and what ranked its zero-history users."""
    out: dict[str, Any] = {}
    for key in GROUP_KEYS:
        pooled = pool_metrics([s.get(key, {}) for s in steps])
        if pooled:
            out[key] = pooled
    for key in NESTED_KEYS:
        labels = dict.fromkeys(label for s in steps for label in s.get(key, {}))
        out[key] = {label: pool_metrics([s[key].get(label, {}) for s in steps if key in s]) for label in labels}
    out["fit_seconds"] = round(sum(s["fit_seconds"] for s in steps), 3)
    out["rank_seconds"] = round(sum(s["rank_seconds"] for s in steps), 3)
    out["zero_history"] = steps[0].get("zero_history")
    out["chosen"] = {"per_step": [s.get("chosen") for s in steps]}
    return out


def step_record(name: str, prepared_catalogue: dict[str, int], users: int, models: dict[str, Any],
                k: int) -> dict[str, Any]:
    """What the results keep of one step: its split, catalogue, users and each model's headline."""
    return {
        "split": name, "n_test_users": users, "catalogue": prepared_catalogue,
        "models": {m: {"recall": r.get("all", {}).get(f"recall@{k}"), "ndcg": r.get("all", {}).get(f"ndcg@{k}"),
                       "fit_seconds": r["fit_seconds"]} for m, r in models.items()},
    }


def run_replay(config: ExperimentConfig, bundle: DataBundle, out: Path, run_model: Any) -> dict[str, Any]:
    """Replay ``config``'s steps with every model of ``config.models``; writes each step's evidence
    to ``out/step_<i>/`` and returns the pooled results (the layout of ``run_split``'s, plus
    ``steps``; ``catalogue`` counts summed over the steps). ``run_model`` is
    :func:`hybrid.evaluation.run.run_model`."""
    device = resolve_device(config.device)
    every = canonical_frame(bundle)
    splits = [filter_training(s, config.data) for s in replay_splits(filter_ratings(every, config.data), config.split)]
    k = max(config.eval.k)
    per_model: dict[str, list[dict[str, Any]]] = {name: [] for name in config.models}
    steps, catalogue = [], {}
    for i, split in enumerate(splits):
        prepared = prepare_split(bundle, every, split, config, device)
        step_out = out / f"step_{i}"
        step_out.mkdir(parents=True, exist_ok=True)
        write_evidence(prepared, step_out)
        fitted: dict[tuple[str, str, str], Any] = {}  # a step's fits are its own
        models = {name: run_model(name, config, prepared, step_out, fitted) for name in config.models}
        for name, result in models.items():
            per_model[name].append(result)
        record = catalogue_record(prepared)
        steps.append(step_record(prepared.split.name, record, len(prepared.users), models, k))
        for key, value in record.items():
            catalogue[key] = catalogue.get(key, 0) + value
        logger.info("replay step %d of %d: %d users, %d items in the catalogue", i + 1, len(splits),
                    len(prepared.users), record["items"])
    return {
        "dataset": bundle.name,
        "split": f"replay({len(steps)} steps of {config.split.step} from {splits[0].name.split('[', 1)[1].split(',')[0]})",
        "cold_axis": "item", "k": list(config.eval.k), "config": to_dict(config), "device": str(device),
        "n_test_users": sum(s["n_test_users"] for s in steps), "catalogue": catalogue,
        "provenance": provenance(device), "steps": steps,
        "models": {name: pool_model(results) for name, results in per_model.items()},
    }
