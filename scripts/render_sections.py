"""Sections of docs/results.md beyond the cold-start tables: the fit's cost by stage
(``benchmarks/fit_profile.py``), the exploration replay (``benchmarks/explore_replay.py``) and the
explanations' cost (``benchmarks/explain_cost.py``)."""

from __future__ import annotations

from typing import Any

WARM_TARGET = 1.5  # new items reaching 5 interactions, chosen setting over m = 0


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _cost(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| policy | slots | click rate | click cost | new items shown | warmed (≥5) | warmed vs m=0 | "
             "steps to half warmed | explore clicks / shown |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['policy'] or 'off'} | {r['slots']} | {r['click_rate']:.4f} | {_cost(r['click_cost'])} | "
                     f"{r['shown_new']} of {r['new_items']} | {r['warmed']} | {_ratio(r['warmed_ratio'])} | "
                     f"{r['steps_to_half_warmed'] if r['steps_to_half_warmed'] is not None else '—'} | "
                     f"{r['explore_clicks']} / {r['explore_shown']} |")
    return lines


def verdict(entry: dict[str, Any], max_cost: float) -> str:
    """Whether the setting chosen on validation meets the target on test (≥1.5× the new items
    warmed by m = 0, at ≤3% click cost), and by how much not."""
    chosen = entry["chosen"]
    if not chosen["slots"]:
        return ("validation chose m = 0: no setting warmed more new items than m = 0 within a "
                f"{max_cost:.0%} click cost there, so the test row is m = 0 itself (**target not shown**)")
    rows = entry["test"]
    base = next(r for r in rows if r["slots"] == 0)
    row = next(r for r in rows if r["policy"] == chosen["policy"] and r["slots"] == chosen["slots"])
    cost = row["click_cost"]
    enough = row["warmed"] >= WARM_TARGET * base["warmed"] and row["warmed"] > base["warmed"]
    met = enough and cost is not None and cost <= max_cost
    return (f"chosen on validation: {chosen['policy']}, {chosen['slots']} slot(s); on test it warms "
            f"{row['warmed']} new items against m = 0's {base['warmed']} ({_ratio(row['warmed_ratio'])}) at a click "
            f"cost of {_cost(cost)}: **{'met' if met else 'missed'}** (target ≥{WARM_TARGET}× at ≤{max_cost:.0%})")


def render_explore_replay(result: dict[str, Any], source: str) -> str:
    """One section per data set: the validation rows, the test rows and the chosen setting."""
    lines = [f"#### Exploration slots replayed, from `{source}`", "", f"    {result['command']}", "",
             f"commit `{str(result.get('git_commit') or 'unknown')[:12]}`, {result.get('date', '?')}. Each step the "
             "hybrid recommends 20 items to that step's known users; a shown item the user buys or rates in the "
             "same step is a click and joins the model (`partial_fit`); nothing unshown joins. *Warmed*: a new "
             "item (no interaction before the replay) that reaches 5 interactions. *Click cost*: the relative "
             "loss of click rate against m = 0.", ""]
    for name, entry in result["datasets"].items():
        served = entry["test"][0]
        lines += [f"**{name}** (steps: {entry['step']}; test: {served['steps']} steps, {served['users_served']} "
                  f"user-steps served, {served['users_unknown']} skipped as unknown users)", "",
                  "Validation (the last stretch of the training period; chooses the setting):", "",
                  *_table(entry["validation"]), "", "Test:", "", *_table(entry["test"]), "",
                  verdict(entry, result["max_click_cost"]) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_fit_profile(result: dict[str, Any], source: str) -> str:
    """One row per config: the hybrid's fit against GF-CF's and the target, then the stages that cost most."""
    lines = [f"#### The hybrid's fit by stage, from `{source}`", "", f"    {result['command']}", "",
             f"commit `{str(result.get('git_commit') or 'unknown')[:12]}`, {result.get('torch_threads', '?')} torch "
             "threads, warm encoder cache, one seed.", "",
             "| config | items | interactions | hybrid fit s | target s | GF-CF s | ratio | graph half | three costliest stages (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, e in result["configs"].items():
        parts = [(k, v) for k, v in e["stages"].items() if k != "total"]
        stages = sorted(parts, key=lambda kv: -kv[1]["seconds"])[:3]
        costly = ", ".join(f"{stage} {s['seconds']:.1f}" for stage, s in stages)
        target = e.get("target_seconds")
        mark = "" if target is None else (" ✓" if e["hybrid_fit_seconds"] <= target else " ✗")
        lines.append(f"| {name} | {e['items']:,} | {e['interactions']:,} | {e['hybrid_fit_seconds']:.1f}{mark} | "
                     f"{target if target is not None else '—'} | {e['gf_cf_fit_seconds']:.1f} | {e['ratio']:.0f}× | "
                     f"{e.get('warm_model') or '?'} | {costly} |")
    return "\n".join(lines) + "\n"


def render_fit_scaling(result: dict[str, Any], source: str) -> str:
    """``benchmarks/fit_scaling.py``'s JSON: fit seconds and peak memory per point, the fitted exponents."""
    lines = [f"#### The hybrid's fit against the data's size (synthetic), from `{source}`", "",
             f"    {result['command']}", "", f"commit `{str(result.get('git_commit') or 'unknown')[:12]}`.", "",
             "| sweep | interactions | users | items | hybrid fit s | GF-CF s | peak GiB | graph half | three costliest stages (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for key, label in (("by_interactions", "interactions"), ("by_items", "items")):
        for r in result.get(key, []):
            if "error" in r:
                lines.append(f"| {label} | {r['interactions']:,} | — | {r['items']:,} | failed: {' '.join(r['error'])} "
                             "| | | | |")
                continue
            parts = [(k, v) for k, v in r["stages"].items() if k != "total"]
            costly = ", ".join(f"{k} {v['seconds']:.1f}" for k, v in sorted(parts, key=lambda kv: -kv[1]["seconds"])[:3])
            lines.append(f"| {label} | {r['interactions']:,} | {r['users']:,} | {r['items']:,} | "
                         f"{r['hybrid_fit_seconds']:.1f} | {r['gf_cf_fit_seconds']:.1f} | {r['peak_rss_gib']:.2f} | "
                         f"{r['warm_model']} | {costly} |")
    lines += ["", f"Fit seconds ∝ interactions^{result.get('exponent_interactions')} (catalogue fixed), "
              f"∝ items^{result.get('exponent_items')} (interactions fixed); target: the first ≤ 1.15."]
    return "\n".join(lines) + "\n"


def render_explain_cost(result: dict[str, Any], source: str) -> str:
    """``benchmarks/explain_cost.py``'s JSON: what explaining a top-k list costs against ranking it."""
    rows = result["rows"]
    k = rows[0]["k"] if rows else 20
    lines = [f"#### Explaining a top-{k} list against ranking it, from `{source}`", "", f"    {result['command']}", "",
             f"commit `{(result.get('git_commit') or '?')[:12]}`. The same known users ranked (`recommend`) and ranked "
             "with every listed item explained (`recommend(..., explain=True)`, the dicts built); the explanation's "
             "cost is the difference (median of repeats). Target: explain / rank ≤ 1.", "",
             "| data | users | items | graph half | rank s | rank + explain s | explain s | explain / rank |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['users']} | {r['items']:,} | {r['graph_half']} | {r['rank_seconds']:.3f} | "
                     f"{r['rank_and_explain_seconds']:.3f} | {r['explain_seconds']:.3f} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def render_ray(result: dict[str, Any], source: str) -> str:
    """``benchmarks/distributed.py``'s JSON: batch recommendation and encoding on 1 and 2 Ray workers."""
    lines = [f"#### Ray on this machine: 1 and 2 workers, from `{source}`", "", f"    {result['command']}", "",
             f"commit `{(result.get('git_commit') or '?')[:12]}`, Ray {result['ray']} on {result['cpus']} CPUs. "
             f"Recommend: every {result['data']} user's top {result['k']} with reasons ({result['users']:,} users, "
             f"chunks of {result['chunk_size']}); the Ray lists equal the single process's: "
             f"{'yes' if result['ray_lists_equal_single_process'] else '**no**'}. Encode: {result['texts']:,} item "
             f"texts ({', '.join(result['encode_data']) or result['data']}) into an empty cache. Seconds from start "
             "to finish, the actors' start-up (loading the model or the encoder) included; each engine's fastest of "
             f"{result.get('repeats', 1)} interleaved runs (every run's time in the JSON). Target: 2 workers ≥ 1.6× "
             "the throughput of 1 for batch recommendation.", "",
             "| task | engine | workers | seconds | per second | speed-up vs 1 worker |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        rate = r.get("users_per_second", r.get("texts_per_second"))
        lines.append(f"| {r['task']} | {r['engine']} | {r['workers'] or '—'} | {r['seconds']:.2f} | {rate:,.1f} | "
                     f"{r['speedup_vs_1_worker']:.2f}× |")
    return "\n".join(lines) + "\n"
