"""A replay's comparisons get paired bootstrap intervals recomputed from its evidence files
(benchmarks/replay_intervals.py), and docs/results.md shows them under the targets line."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "benchmarks", ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from render_replay import intervals_line  # noqa: E402
from replay_intervals import list_metrics, replay_intervals  # noqa: E402


def test_list_metrics_are_recall_and_ndcg_at_k() -> None:
    recall, ndcg = list_metrics(["a", "b", "c"], {"b", "x"}, k=2)
    assert recall == 0.5
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert list_metrics([], {"a"}, k=20) == (0.0, 0.0)


def write_step(folder: Path, test: dict[str, list[str]], known: dict[str, list[str]],
               lists: dict[str, dict[str, list[str]]]) -> None:
    """One step's evidence files as hybrid-eval writes them."""
    folder.mkdir(parents=True)
    pairs = lambda table: pd.DataFrame([(u, i) for u, items in table.items() for i in items],  # noqa: E731
                                       columns=["user", "item"])
    pairs(test).to_csv(folder / "test.csv", index=False)
    pairs(known).to_csv(folder / "known_items.csv", index=False)
    for model, ranked in lists.items():
        pd.DataFrame([(u, r + 1, i, -r) for u, items in ranked.items() for r, i in enumerate(items)],
                     columns=["user", "rank", "item", "score"]).to_csv(folder / f"rankings_{model}.csv", index=False)


def test_intervals_compare_the_hybrid_with_the_best_rival_of_each_group(tmp_path: Path) -> None:
    # Eight user-steps over two steps: u0-u3 new (no known items), u4-u7 with two known items.
    # The hybrid finds each user's item; popularity only the even users'; trending none.
    for step, users in enumerate((["u0", "u1", "u4", "u5"], ["u2", "u3", "u6", "u7"])):
        test = {u: [f"i{u}"] for u in users}
        known = {u: ["k1", "k2"] for u in users if int(u[1]) >= 4}
        hit = {u: [f"i{u}", "z"] for u in users}
        half = {u: ([f"i{u}"] if int(u[1]) % 2 == 0 else ["z"]) for u in users}
        write_step(tmp_path / f"step_{step}", test, known,
                   {"hybrid": hit, "popularity": half, "trending": {u: ["z"] for u in users}})
    found = replay_intervals(tmp_path, ["popularity", "trending", "hybrid"], k=20)
    by = {(c["group"], c["metric"]): c for c in found["comparisons"]}
    assert set(by) == {(g, m) for g in ("all", "users 0", "users 1-4") for m in ("recall@20", "ndcg@20")}
    everything = by["all", "recall@20"]
    assert (everything["peer"], everything["user-steps"], everything["ratio"]) == ("popularity", 8, 2.0)
    assert everything["interval"][0] <= 2.0 <= everything["interval"][1]
    assert by["users 0", "ndcg@20"]["user-steps"] == by["users 1-4", "recall@20"]["user-steps"] == 4


def test_a_model_against_itself_is_sure_of_a_ratio_of_one(tmp_path: Path) -> None:
    same = {u: [f"i{u}"] if u != "u3" else ["z"] for u in ("u0", "u1", "u2", "u3")}
    write_step(tmp_path / "step_0", {u: [f"i{u}"] for u in same}, {u: ["k"] for u in same},
               {"hybrid": same, "gf_cf": same})
    found = replay_intervals(tmp_path, ["gf_cf", "hybrid"], k=20)
    assert [c["group"] for c in found["comparisons"]] == ["all", "all", "users 1-4", "users 1-4"]
    assert all(c["ratio"] == 1.0 and c["interval"] == [1.0, 1.0] for c in found["comparisons"])


def test_the_intervals_line_names_each_comparison() -> None:
    entry = {"intervals": {"resamples": 5000, "level": 0.9, "comparisons": [
        {"group": "all", "metric": "recall@20", "peer": "text_gcn", "ratio": 1.031, "interval": [0.906, 1.171]}]}}
    line = intervals_line(entry)
    assert line is not None and "90% interval over 5,000 paired resamples" in line
    assert "all R vs text_gcn 1.031 [0.906, 1.171]" in line
    assert intervals_line({}) is None
