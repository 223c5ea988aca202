"""hybrid-eval explains a few of the hybrid's recommendations in results.md (issue 36): a user with
history, a new item, a zero-history user, each adding up to the score it was ranked by."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from test_evaluate import tiny_bundle

from hybrid.config import EvalConfig, ExperimentConfig, SplitConfig
from hybrid.evaluation.run import run_split

HYBRID = {"neighbours": 5, "candidates": 10, "random_negatives": 10}


def config(kind: str) -> ExperimentConfig:
    return ExperimentConfig(
        name="tiny", split=SplitConfig(kind=kind, cold_fraction=0.3, n=1, valid_per_user=1, seed=0),  # type: ignore[arg-type]
        eval=EvalConfig(k=[5], seeds=1), models=["hybrid", "popularity"], device="cpu", params={"hybrid": HYBRID},
    )


def check(out: Path, kinds: set[str]) -> list[dict]:
    results = json.loads((out / "results.json").read_text())
    examples = results["models"]["hybrid"]["explained"]
    assert kinds <= {e["example"] for e in examples} and "explained" not in results["models"]["popularity"]
    lists = [out / "rankings_hybrid.csv", *[p for p in [out / "rankings_hybrid.cold_only.csv"] if p.exists()]]
    rankings = pd.concat([pd.read_csv(p) for p in lists]).drop_duplicates(["user", "item"])  # the new item: either
    for e in examples:
        assert abs(e["bias"] + sum(e["contributions"].values()) - e["score"]) < 1e-5
        row = rankings[(rankings["user"].astype(str) == str(e["user"])) & (rankings["item"].astype(str) == str(e["item"]))]
        assert len(row) == 1 and np.isclose(row["score"].iloc[0], e["score"], atol=1e-4)
    report = (out / "results.md").read_text()
    assert "Why these items" in report and all(e["because"] in report for e in examples)
    return examples


def test_results_md_explains_a_warm_user_and_a_new_item(tmp_path: Path) -> None:
    run_split(config("cold_items"), tiny_bundle(), tmp_path / "items")
    examples = check(tmp_path / "items", {"a user with history", "a new item"})
    new = next(e for e in examples if e["example"] == "a new item")
    assert new["bucket"] == "0" and new["graph_support"] == []


def test_results_md_explains_a_zero_history_user(tmp_path: Path) -> None:
    run_split(config("cold_users"), tiny_bundle(), tmp_path / "users")
    examples = check(tmp_path / "users", {"a zero-history user"})
    zero = next(e for e in examples if e["example"] == "a zero-history user")
    assert zero["text_support"] == [] and zero["graph_support"] == []
