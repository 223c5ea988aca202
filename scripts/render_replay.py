"""Tables of the time-true evaluation in docs/results.md: a replay's user-steps by user and item
bucket, and the one list of each random cold-item config at every new-item share."""

from __future__ import annotations

import re
from typing import Any

from render_targets import HYBRID, _value, cell, k_of, number, pair, users_text

USER_BUCKETS = ("0", "1-4", "5-19", "20+")
SHARE = re.compile(r"cold_items\((\d+)% seed")
ITEM_BUCKETS = ("0", "1-4", "5-19", "20-99", "100+")


def _users(metrics: dict[str, Any] | None) -> str:
    users = (metrics or {}).get("users")
    return "" if users is None else f" ({users_text(users)})"


def replay_table(entry: dict[str, Any]) -> str:
    """One row per model: all user-steps, each user bucket (R / N, user-steps in brackets), each item
    bucket's recall, what ranks its zero-history users, and fit seconds summed over the steps."""
    k = k_of(entry)
    header = ["model", f"all user-steps R@{k} / N@{k}", *(f"users {b} R / N" for b in USER_BUCKETS),
              *(f"items {b} R" for b in ITEM_BUCKETS), "zero-history ranked by", "fit s (all steps)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in entry["models"].items():
        users = result.get("user_buckets") or {}
        items = result.get("buckets") or {}
        fit = number(result, "fit_seconds")
        row = [name, pair(result.get("all"), k),
               *(pair(users.get(b), k) + _users(users.get(b)) if users.get(b) else "—" for b in USER_BUCKETS),
               *(cell(items.get(b), f"recall@{k}") for b in ITEM_BUCKETS),
               str(result.get("zero_history") or "—"), "—" if fit is None else f"{fit:.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def steps_table(entry: dict[str, Any]) -> str:
    """Per step: its users, catalogue and unreachable interactions, and the hybrid's and the best
    peer's Recall@k."""
    lines = ["| step | users | items listed | new items | unreachable interactions | hybrid R | best peer R |",
             "|---|---|---|---|---|---|---|"]
    for step in entry.get("steps") or []:
        models = step["models"]
        peers = {m: r["recall"] for m, r in models.items() if m != HYBRID and r.get("recall") is not None}
        best = max(peers, key=peers.__getitem__) if peers else None
        catalogue = step.get("catalogue") or {}
        mine = (models.get(HYBRID) or {}).get("recall")
        lines.append(f"| {step['split'].split(': ', 1)[-1]} | {step['n_test_users']} | {catalogue.get('items', '—')} | "
                     f"{catalogue.get('new_items', '—')} | {catalogue.get('unreachable_interactions', '—')} | "
                     f"{'—' if mine is None else f'{mine:.4f}'} | "
                     f"{'—' if best is None else f'{peers[best]:.4f} ({best})'} |")
    return "\n".join(lines)


def shares_table(datasets: dict[str, dict[str, Any]]) -> str:
    """Per random cold-item config and new-item share: the hybrid's one list against the best peer's."""
    rows = []
    for name, entry in datasets.items():
        share = SHARE.match(str(entry.get("split", "")))  # a random cold-item split names its share
        if share is None:
            continue
        k = k_of(entry)
        models = entry["models"]
        base = name.partition("@")[0]
        mine = {key: _value(models, HYBRID, "all", f"{key}@{k}") for key in ("recall", "ndcg")}
        peers = {m: _value(models, m, "all", f"recall@{k}") for m in models if m != HYBRID}
        peers = {m: v for m, v in peers.items() if v is not None}
        best = max(peers, key=peers.__getitem__) if peers else None
        best_ndcg = _value(models, best, "all", f"ndcg@{k}") if best else None
        met = None if best is None or mine["recall"] is None else \
            mine["recall"] > peers[best] and (mine["ndcg"] or 0) > max(
                (_value(models, m, "all", f"ndcg@{k}") or 0) for m in peers)
        rows.append((base, int(share.group(1)) / 100, mine, best, peers.get(best), best_ndcg, met))
    if not rows:
        return ""
    lines = ["| config | new-item share | hybrid one list R / N | best peer (by R) R / N | hybrid above every peer |",
             "|---|---|---|---|---|"]
    for base, share, mine, best, recall, ndcg, met in sorted(rows, key=lambda r: (r[0], r[1])):
        lines.append(f"| {base} | {share:g} | {_f(mine['recall'])} / {_f(mine['ndcg'])} | {best} {_f(recall)} / "
                     f"{_f(ndcg)} | {'—' if met is None else ('yes' if met else 'no')} |")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def intervals_line(entry: dict[str, Any]) -> str | None:
    """How sure each replay comparison is (benchmarks/replay_intervals.py), or None without one."""
    found = entry.get("intervals")
    if not found or not found.get("comparisons"):
        return None
    parts = []
    for c in found["comparisons"]:
        what = f"{c['group']} {c['metric'].split('@')[0][0].upper()}"
        if c.get("interval") is None:
            parts.append(f"{what}: no interval ({c['user-steps']} user-steps)")
        else:
            parts.append(f"{what} vs {c['peer']} {c['ratio']:.3f} [{c['interval'][0]:.3f}, {c['interval'][1]:.3f}]")
    return (f"How sure (the hybrid's mean over the best rival's, with its {100 * found['level']:g}% interval over "
            f"{found['resamples']:,} paired resamples of the users, each with all its steps): "
            + " · ".join(parts) + ".")
