"""Turn a results dictionary into the Markdown table and the recall-by-bucket plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid.data.buckets import NAMES

# warm / cold: the test items of one kind in the full list; cold_only / warm_only: lists of that
# kind of item only (the ALDI/GAR protocols), on splits with cold items.
GROUPS = ("all", "warm", "cold", "cold_only", "warm_only")
SHOWN = ("recall", "ndcg", "precision", "mrr", "hit_rate")
WITH_STD = ("recall", "ndcg")  # cells shown as mean ± std when results average several seeds


def cell(metrics: dict[str, Any], key: str, with_std: bool = True) -> str:
    """``metrics[key]`` to 4 decimals, ``± <key>_std`` after it when present and the bootstrap
    interval ``[lo, hi]`` when there is one; — when absent."""
    value = metrics.get(key)
    if value is None:
        return "—"
    std = metrics.get(f"{key}_std") if with_std else None
    text = f"{value:.4f}" if std is None or std != std else f"{value:.4f} ± {std:.4f}"
    low, high = metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi")
    if with_std and low is not None and high is not None:
        text += f" [{low:.4f}, {high:.4f}]"
    return text


def markdown_table(results: dict[str, Any]) -> str:
    """One row per model; columns = each metric at the largest K for all / warm / cold / cold_only /
    warm_only, and timings. Results averaged over seeds show recall and NDCG as mean ± std."""
    k = max(results["k"])
    groups = [g for g in GROUPS if any(g in m for m in results["models"].values())]
    header = ["model"]
    for group in groups:
        header += [f"{group} {metric}@{k}" for metric in (SHOWN if group == "all" else SHOWN[:2])]
    header += ["fit s", "rank s"]
    title = f"# {results['dataset']} — {results['split']} ({results['n_test_users']} test users, device {results['device']}"
    if "seeds" in results:
        title += f"; mean ± sample std over split seeds {', '.join(map(str, results['seeds']))}"
    bootstrap = (results.get("config") or {}).get("eval", {}).get("bootstrap")
    if bootstrap:
        title += f"; [bootstrap 95% interval over users, {bootstrap} resamples]"
    lines = [
        title + ")",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, result in results["models"].items():
        row = [name]
        for group in groups:
            for metric in SHOWN if group == "all" else SHOWN[:2]:
                row.append(cell(result.get(group, {}), f"{metric}@{k}", metric in WITH_STD))
        row += [f"{result['fit_seconds']:.1f}", f"{result['rank_seconds']:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Recall@{k} by the test item's training-interaction count:", ""]
    names = list(NAMES)
    lines.append("| model | " + " | ".join(names) + " |")
    lines.append("|" + "---|" * (len(names) + 1))
    for name, result in results["models"].items():
        cells = []
        for bucket in names:
            metrics = result["buckets"].get(bucket, {})
            value, users = metrics.get(f"recall@{k}"), metrics.get("users")
            if value is None or value != value:
                cells.append("—")
            else:  # users: a mean over seeds may be fractional
                users = int(users) if float(users).is_integer() else round(users, 1)
                cells.append(f"{cell(metrics, f'recall@{k}')} ({users})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("(bucket cells: recall, then the number of users with a test item in that bucket)")
    lines += ["", user_bucket_table(results)]
    if any("candidates" in r for r in results["models"].values()):
        lines += ["", candidate_table(results)]
    lines += explained_lines(results)
    return "\n".join(lines) + "\n"


def explained_lines(results: dict[str, Any]) -> list[str]:
    """The "why these items" lines: each model's explained examples (:mod:`hybrid.evaluation.explained`), if any."""
    lines = []
    for name, result in results["models"].items():
        for e in result.get("explained") or []:
            lines.append(f"- {name}, {e['example']}: user {e['user']}, item {e['item']} (bucket {e['bucket']}, "
                         f"{e['path']}, score {e['score']:.3f}): {e['because']}")
    return ["", "Why these items (a few of the hybrid's recommendations, explained):", "", *lines] if lines else []


def user_bucket_table(results: dict[str, Any]) -> str:
    """Recall and NDCG at the largest K by the user's known interactions (0 = zero-history users),
    and what ranked each model's zero-history users (its own prior, or popularity)."""
    k = max(results["k"])
    labels = list(dict.fromkeys(b for r in results["models"].values() for b in r.get("user_buckets", {})))
    lines = [f"Recall@{k} / NDCG@{k} by the user's known interactions (users in brackets); zero-history users "
             "of a model without a prior of its own are ranked by popularity:", "",
             "| model | zero-history ranked by | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 2)]
    for name, result in results["models"].items():
        cells = []
        for label in labels:
            metrics = result.get("user_buckets", {}).get(label, {})
            recall, ndcg = metrics.get(f"recall@{k}"), metrics.get(f"ndcg@{k}")
            if recall is None or recall != recall:
                cells.append("—")
            else:
                users = metrics["users"]
                users = int(users) if float(users).is_integer() else round(users, 1)
                cells.append(f"{recall:.4f} / {ndcg:.4f} ({users})")
        lines.append(f"| {name} | {result.get('zero_history', '—')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    names = list(NAMES)
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
