"""What explaining a top-20 list costs against ranking it (issue 36: "no more than ranking it again").

For each data set (the bundled Online Retail; ML-100K where ``--data-root`` holds it), the hybrid is
fitted with its defaults on every interaction, then, for the same ``--users`` known users in one
batch, timed (median of ``--repeats``, after one warm-up call):

- **rank**: ``recommend(users, k=20)``;
- **rank + explain**: ``recommend(users, k=20, explain=True)``, the same lists with every item explained.

The explanation's own cost is their difference; ``ratio`` = that cost / rank (the target: ≤ 1).
Writes ``--json`` (default benchmarks/results/explain_cost.json) and prints a table.

    python benchmarks/explain_cost.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybrid import HybridRecommender, load_dataset
from hybrid.evaluation.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]
K = 20


def timed(call: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls, after one untimed warm-up."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(name: str, data_root: str | None, n_users: int, repeats: int) -> dict[str, Any]:
    """One data set's row (see the module docstring)."""
    bundle = load_dataset(name, data_root)
    start = time.perf_counter()
    rec = HybridRecommender().fit(bundle.interactions, bundle.item_text, user_text=bundle.user_text)
    fit_seconds = time.perf_counter() - start
    users = list(rec.user_ids_[:n_users])
    rank = timed(lambda: rec.recommend(users, k=K), repeats)
    both = timed(lambda: rec.recommend(users, k=K, explain=True), repeats)
    explained = rec.recommend(users[:1], k=K, explain=True)[-1][0]
    return {"data": name, "users": len(users), "items": len(rec.item_ids_), "k": K,
            "graph_half": rec.model_.chosen().get("warm_model"), "fit_seconds": round(fit_seconds, 2),
            "rank_seconds": round(rank, 4), "rank_and_explain_seconds": round(both, 4),
            "explain_seconds": round(both - rank, 4), "ratio": round((both - rank) / rank, 2),
            "example": explained[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "explain_cost.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = ["online_retail"] + (["ml-100k"] if args.data_root and (Path(args.data_root) / "ml-100k").exists() else [])
    rows = [measure(name, args.data_root, args.users, args.repeats) for name in names]
    document = {"command": "python benchmarks/explain_cost.py" + (f" --data-root {args.data_root}" if args.data_root else ""),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git_commit": git_commit(), "rows": rows}
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print("| data | users | items | graph half | rank s | rank + explain s | explain s | explain / rank |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['users']} | {r['items']:,} | {r['graph_half']} | {r['rank_seconds']:.3f} | "
              f"{r['rank_and_explain_seconds']:.3f} | {r['explain_seconds']:.3f} | {r['ratio']:.2f} |")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
