"""The Markdown table: cold_only / warm_only columns, and mean ± std cells for averaged seeds."""

from __future__ import annotations

from typing import Any

from hybrid.evaluation.report import markdown_table


def results(std: bool) -> dict[str, Any]:
    def group(recall: float) -> dict[str, float]:
        metrics = {"recall@20": recall, "ndcg@20": recall / 2, "precision@20": 0.01, "mrr@20": 0.2,
                   "hit_rate@20": 0.3, "users": 7}
        if std:
            metrics |= {f"{key}_std": 0.005 for key in list(metrics) if key != "users"}
        return metrics

    model = {g: group(r) for g, r in [("all", 0.1234), ("warm", 0.2), ("cold", 0.05), ("cold_only", 0.4),
                                      ("warm_only", 0.3)]}
    model |= {"buckets": {"0": group(0.05)}, "fit_seconds": 1.0, "rank_seconds": 0.5}
    extra = {"seeds": [0, 1, 2]} if std else {}
    return {"dataset": "d", "split": "s", "k": [20], "n_test_users": 7, "device": "cpu",
            "models": {"m": model}, **extra}


def test_restricted_columns_and_plain_cells_for_one_seed() -> None:
    table = markdown_table(results(std=False))
    header = next(line for line in table.splitlines() if line.startswith("| model | all"))
    assert header.split(" | ")[-6:-2] == ["cold_only recall@20", "cold_only ndcg@20", "warm_only recall@20",
                                          "warm_only ndcg@20"]
    row = next(line for line in table.splitlines() if line.startswith("| m | 0.1234"))
    assert "| 0.4000 | 0.2000 | 0.3000 | 0.1500 |" in row and "±" not in table
    assert "| m | 0.0500 (7) |" in table


def test_mean_and_std_for_recall_and_ndcg_when_seeds_are_averaged() -> None:
    table = markdown_table(results(std=True))
    assert "split seeds 0, 1, 2" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.startswith("| m | 0.1234"))
    assert row.startswith("| m | 0.1234 ± 0.0050 | 0.0617 ± 0.0050 | 0.0100 | 0.2000 | 0.3000 |")
    assert "| 0.4000 ± 0.0050 | 0.2000 ± 0.0050 | 0.3000 ± 0.0050 | 0.1500 ± 0.0050 |" in row
    assert "| m | 0.0500 ± 0.0050 (7) |" in table
