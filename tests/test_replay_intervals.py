"""A replay's comparisons get paired bootstrap intervals recomputed from its evidence files
(benchmarks/replay_intervals.py), and docs/results.md shows them under the targets line."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "benchmarks", ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from render_replay import intervals_line  # noqa: E402
from replay_intervals import MIN_USER_STEPS, replay_intervals, step_metrics  # noqa: E402


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


def entry_of(means: dict[str, tuple[float, float]], steps: int) -> dict[str, Any]:
    """A replay's JSON entry holding only what the intervals read."""
    return {"k": [10, 20], "steps": [{}] * steps,
            "models": {m: {"all": {"recall@20": r, "ndcg@20": n}} for m, (r, n) in means.items()}}


def test_step_metrics_are_recall_and_ndcg_at_k(tmp_path: Path) -> None:
    write_step(tmp_path / "step_0", {"u": ["b", "x"], "NA": ["a"]}, {"u": ["k"]},
               {"hybrid": {"u": ["a", "b", "c"], "NA": ["a"]}})
    frame = step_metrics(tmp_path / "step_0", ["hybrid"], k=20).set_index("user")
    assert frame.loc["u", "hybrid recall"] == 0.5 and frame.loc["NA", "hybrid recall"] == 1.0  # "NA" is an id
    assert frame.loc["u", "hybrid ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert frame.loc["u", "known"] == 1 and frame.loc["NA", "known"] == 0


def test_intervals_compare_the_hybrid_with_the_best_rival_of_each_group(tmp_path: Path) -> None:
    # 2 steps x 30 users, each user in both steps; the first ten users have no known items, the
    # rest two. The hybrid finds every user's item; popularity the even users'; trending none.
    users = [f"u{n}" for n in range(30)]
    for step in range(2):
        write_step(tmp_path / f"step_{step}", {u: [f"i{u}"] for u in users},
                   {u: ["k1", "k2"] for u in users[10:]},
                   {"hybrid": {u: [f"i{u}", "z"] for u in users},
                    "popularity": {u: [f"i{u}"] if int(u[1:]) % 2 == 0 else ["z"] for u in users},
                    "trending": {u: ["z"] for u in users}})
    write_step(tmp_path / "step_2", {"old": ["x"]}, {}, {m: {"old": ["x"]} for m in ("hybrid", "popularity", "trending")})
    ndcg = lambda share: share  # noqa: E731  (one relevant item at rank 1: NDCG = recall)
    entry = entry_of({"popularity": (0.5, ndcg(0.5)), "trending": (0.0, 0.0), "hybrid": (1.0, 1.0)}, steps=2)
    found = replay_intervals(tmp_path, entry)  # step_2, from an earlier run, is not read
    by = {(c["group"], c["metric"]): c for c in found["comparisons"]}
    everything = by["all user-steps", "recall@20"]
    assert (everything["peer"], everything["user-steps"], everything["users"], everything["ratio"]) == \
        ("popularity", 60, 30, 2.0)
    assert everything["interval"][0] <= 2.0 <= everything["interval"][1]
    assert by["users 1-4", "ndcg@20"]["user-steps"] == 40
    new = by["users 0", "recall@20"]  # 20 user-steps of 10 users: enough, and the rival is a prior
    assert new["peer"] == "popularity" and new["interval"] is not None
    with pytest.raises(ValueError, match="evidence files give"):
        replay_intervals(tmp_path, entry_of({"popularity": (0.4, 0.5), "trending": (0, 0), "hybrid": (1, 1)}, 2))


def test_too_few_user_steps_or_a_rival_at_zero_get_no_interval(tmp_path: Path) -> None:
    users = [f"u{n}" for n in range(MIN_USER_STEPS - 1)]
    write_step(tmp_path / "step_0", {u: [f"i{u}"] for u in users}, {},
               {"hybrid": {u: [f"i{u}"] for u in users}, "gf_cf": {u: ["z"] for u in users}})
    found = replay_intervals(tmp_path, entry_of({"gf_cf": (0.0, 0.0), "hybrid": (1.0, 1.0)}, 1))
    assert [c["interval"] for c in found["comparisons"]] == [None] * 4  # users 0: no prior among the models
    line = intervals_line({"intervals": found})
    assert line is not None and f"all user-steps R: no interval ({MIN_USER_STEPS - 1} user-steps)" in line


def test_the_intervals_line_names_each_comparison() -> None:
    entry = {"intervals": {"resamples": 5000, "level": 0.9, "comparisons": [
        {"group": "all user-steps", "metric": "recall@20", "peer": "text_gcn", "user-steps": 170, "ratio": 1.031,
         "interval": [0.906, 1.171]}]}}
    line = intervals_line(entry)
    assert line is not None and "90% interval over 5,000 paired resamples of the users" in line
    assert "all user-steps R vs text_gcn 1.031 [0.906, 1.171]" in line
    assert intervals_line({}) is None
