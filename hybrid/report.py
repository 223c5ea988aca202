"""Turn a results dictionary into the Markdown table and the recall-by-bucket plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid.metrics import BUCKETS

GROUPS = ("all", "warm", "cold")
SHOWN = ("recall", "ndcg", "precision", "mrr", "hit_rate")


def markdown_table(results: dict[str, Any]) -> str:
    """One row per model; columns = each metric at the largest K for all / warm / cold, and timings."""
    k = max(results["k"])
    groups = [g for g in GROUPS if any(g in m for m in results["models"].values())]
    header = ["model"]
    for group in groups:
        header += [f"{group} {metric}@{k}" for metric in (SHOWN if group == "all" else SHOWN[:2])]
    header += ["fit s", "rank s"]
    lines = [
        f"# {results['dataset']} — {results['split']} ({results['n_test_users']} test users, device {results['device']})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, result in results["models"].items():
        row = [name]
        for group in groups:
            for metric in SHOWN if group == "all" else SHOWN[:2]:
                value = result.get(group, {}).get(f"{metric}@{k}")
                row.append("—" if value is None else f"{value:.4f}")
        row += [f"{result['fit_seconds']:.1f}", f"{result['rank_seconds']:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Recall@{k} by the test item's training-interaction count:", ""]
    names = [b[0] for b in BUCKETS]
    lines.append("| model | " + " | ".join(names) + " |")
    lines.append("|" + "---|" * (len(names) + 1))
    for name, result in results["models"].items():
        cells = []
        for bucket in names:
            metrics = result["buckets"].get(bucket, {})
            value = metrics.get(f"recall@{k}")
            cells.append("—" if value is None or value != value else f"{value:.4f} ({metrics['users']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("(bucket cells: recall, then the number of users with a test item in that bucket)")
    if any("candidates" in r for r in results["models"].values()):
        lines += ["", candidate_table(results)]
    return "\n".join(lines) + "\n"


def candidate_table(results: dict[str, Any]) -> str:
    """The LLMRank-protocol table: the held-out item ranked among m candidates."""
    m = results["config"]["eval"]["candidates"]
    lines = [
        f"Held-out item among {m} candidates (LLMRank protocol):",
        "",
        "| model | NDCG@10 | Recall@1 | Recall@5 | users |",
        "|---|---|---|---|---|",
    ]
    for name, result in results["models"].items():
        c = result.get("candidates")
        if c:
            lines.append(f"| {name} | {c['ndcg@10']:.4f} | {c['recall@1']:.4f} | {c['recall@5']:.4f} | {c['users']} |")
    return "\n".join(lines)


def markdown_report(results: dict[str, Any]) -> str:
    """The table of a single run, or one section per scenario."""
    if "scenarios" not in results:
        return markdown_table(results)
    return "\n".join(f"## Scenario: {name}\n\n{markdown_table(r)}" for name, r in results["scenarios"].items())


def plot_buckets(results: dict[str, Any], path: Path) -> None:
    """Recall@K per interaction-count bucket, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = max(results["k"])
    names = [b[0] for b in BUCKETS]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, result in results["models"].items():
        values = [result["buckets"].get(b, {}).get(f"recall@{k}", float("nan")) for b in names]
        ax.plot(names, values, marker="o", label=model)
    ax.set_xlabel("training interactions of the test item")
    ax.set_ylabel(f"Recall@{k}")
    ax.set_title(f"{results['dataset']}: {results['split']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
