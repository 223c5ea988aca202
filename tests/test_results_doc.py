"""README's generated cold-start section matches benchmarks/results/cold_start.json, and the
renderer (scripts/render_results.py) writes the right cells and targets verdicts."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cold_start.json"
README = ROOT / "docs" / "results.md"


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "scripts" / "render_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_results"] = module
    spec.loader.exec_module(module)
    return module


render_results = _load_renderer()


def test_readme_has_the_markers() -> None:
    render_results.split_readme(README.read_text())  # raises unless each marker is there once, in order


def test_readme_section_matches_committed_results() -> None:
    if not RESULTS.exists():
        pytest.skip(f"{RESULTS.relative_to(ROOT)} not generated yet (python benchmarks/cold_start.py, "
                    "then python scripts/render_results.py)")
    section = render_results.section_of(README.read_text())
    assert section == render_results.render_file(RESULTS), (
        "docs/results.md is out of date; run: python scripts/render_results.py"
    )


def _metrics(recall: float, ndcg: float, std: float | None = None) -> dict[str, float]:
    out = {"recall@10": recall / 2, "ndcg@10": ndcg / 2, "recall@20": recall, "ndcg@20": ndcg, "users": 100}
    if std is not None:
        out |= {"recall@20_std": std, "ndcg@20_std": std / 2}
    return out


def _model(all_: tuple[float, float], cold_only: tuple[float, float], warm_only: float,
           buckets: tuple[float, float], fit: float = 1.0) -> dict[str, Any]:
    return {
        "all": _metrics(*all_, std=0.001),
        "warm": _metrics(all_[0] + 0.01, all_[1] + 0.01),
        "cold": _metrics(all_[0] / 2, all_[1] / 2),
        "cold_only": _metrics(*cold_only),
        "warm_only": _metrics(warm_only, warm_only / 2),
        "buckets": {"0": _metrics(0.0, 0.0), "1-4": _metrics(buckets[0], 0.0),
                    "5-19": _metrics(buckets[1], 0.0), "20-99": {"recall@20": None, "users": 0}},
        "fit_seconds": fit,
        "rank_seconds": 0.1,
    }


def _results(hybrid: dict[str, Any]) -> dict[str, Any]:
    models = {
        "popularity": _model((0.010, 0.005), (0.05, 0.04), 0.10, (0.00, 0.01), 0.0),
        "content": _model((0.025, 0.020), (0.15, 0.12), 0.04, (0.03, 0.02), 6.7),
        "lightgcn": _model((0.024, 0.019), (0.00, 0.00), 0.20, (0.05, 0.08), 13.3),
        "gf_cf": _model((0.030, 0.022), (0.00, 0.00), 0.21, (0.04, 0.07), 2.0),
        "lightfm": _model((0.020, 0.018), (0.10, 0.13), 0.18, (0.02, 0.03), 21.9),
        "hybrid": hybrid,
    }
    return {
        "command": "python benchmarks/cold_start.py --configs toy",
        "date": "2030-01-01 00:00 UTC",
        "machine": {"platform": "Linux-x", "cpu": "Some CPU", "cpu_count": 2, "torch_threads": 2, "python": "3.11.9"},
        "package versions": {"torch": "2.13.0", "lightfm-next": "1.19.0"},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": [],
        "configs": ["toy"],
        "datasets": {"toy": {"dataset": "toy-set", "split": "cold_items(random)", "k": [10, 20],
                             "n_test_users": 943, "seeds": [0, 1, 2], "models": models}},
    }


WINNER = _model((0.0364, 0.0250), (0.2347, 0.2761), 0.2060, (0.06, 0.09), 30.0)


def test_cells_of_a_hand_made_results_dict() -> None:
    text = render_results.render(_results(copy.deepcopy(WINNER)))
    assert "    python benchmarks/cold_start.py --configs toy" in text
    assert "commit `0123456789ab`" in text and "uncommitted" not in text
    assert "2 CPUs" in text and "torch threads 2" in text and "lightfm-next 1.19.0" in text
    assert "### toy: toy-set, cold_items(random) (943 test users; mean ± sample std over split seeds 0, 1, 2)" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["model"].startswith("| model | one list R@20 / N@20 | warm (one list) R / N | cold (one list) R / N |")
    # one list with std, warm and cold without, cold_only, warm_only, buckets 1-4 and 5-19, fit seconds
    assert rows["hybrid"] == (
        "| hybrid | 0.0364 ± 0.0010 / 0.0250 ± 0.0005 | 0.0464 / 0.0350 | 0.0182 / 0.0125 | 0.2347 / 0.2761 | "
        "0.2060 / 0.1030 | 0.0600 | 0.0900 | 30.0 |"
    )
    assert rows["popularity"].endswith("| 0.0000 | 0.0100 | 0.0 |")


def test_targets_when_the_hybrid_wins() -> None:
    entry = _results(copy.deepcopy(WINNER))["datasets"]["toy"]
    judged = render_results.targets(entry)
    assert [t.met for t in judged] == [True, True, True, True]
    # warm_only: 0.2060 >= 0.98 x 0.21 (gf_cf) = 0.2058
    assert "0.98 × 0.2100 (gf_cf) = 0.2058" in judged[2].detail
    line = render_results.targets_line(entry)
    assert line.endswith("**4 of 4 met.**") and "**missed**" not in line


def test_targets_when_the_hybrid_loses() -> None:
    loser = copy.deepcopy(WINNER)
    loser["all"]["ndcg@20"] = 0.022  # level with gf_cf: not above it
    loser["cold_only"]["ndcg@20"] = 0.1299  # below lightfm's 0.13
    loser["warm_only"]["recall@20"] = 0.2057  # below 0.98 x 0.21
    loser["buckets"]["5-19"]["recall@20"] = 0.0799  # below lightgcn's 0.08
    entry = _results(loser)["datasets"]["toy"]
    judged = render_results.targets(entry)
    assert [t.met for t in judged] == [False, False, False, False]
    assert "N 0.0220 vs 0.0220 (gf_cf)" in judged[0].detail  # a tie is not a win
    assert render_results.targets_line(entry).endswith("**0 of 4 met.**")


def test_targets_cannot_be_judged_without_a_row() -> None:
    results = _results(copy.deepcopy(WINNER))
    del results["datasets"]["toy"]["models"]["hybrid"]["cold_only"]
    judged = render_results.targets(results["datasets"]["toy"])
    assert judged[1].met is None and "hybrid" in judged[1].detail
    assert [t.met for t in judged[::2]] == [True, True]
    del results["datasets"]["toy"]["models"]["lightfm"]  # an absent peer is left out of the comparison
    assert "lightfm" not in render_results.targets(results["datasets"]["toy"])[1].name


def test_a_temporal_split_is_judged_by_its_one_list_against_1_05_times_the_best_peer() -> None:
    results = _results(copy.deepcopy(WINNER))
    entry = results["datasets"]["toy"]
    entry["split"] = "temporal@2011-11-01T00:00:00"
    best = max(m["all"]["recall@20"] for name, m in entry["models"].items() if name != "hybrid")
    entry["models"]["hybrid"]["all"]["recall@20"] = 1.04 * best
    judged = render_results.targets(entry)
    assert judged[0].name.startswith("one list") and judged[0].met is False and "% short" in judged[0].detail
    entry["models"]["hybrid"]["all"]["recall@20"] = 1.06 * best
    entry["models"]["hybrid"]["all"]["ndcg@20"] = 10.0
    assert render_results.targets(entry)[0].met is True
    # no user buckets in this entry: the zero-history target cannot be judged
    assert render_results.targets(entry)[1].name.startswith("zero-history") and render_results.targets(entry)[1].met is None


def _replay_entry() -> dict[str, Any]:
    """A replay entry: the hybrid wins every user-step but its zero-history users, where popularity wins."""
    entry = _results(copy.deepcopy(WINNER))["datasets"]["toy"]
    entry["split"], entry["steps"] = "replay(2 steps of W from 2030-01-01)", [
        {"split": "replay step 0: [a, b)", "n_test_users": 50, "catalogue": {"items": 10, "new_items": 1,
                                                                             "unreachable_interactions": 3},
         "models": {"hybrid": {"recall": 0.2, "ndcg": 0.1, "fit_seconds": 1.0},
                    "popularity": {"recall": 0.1, "ndcg": 0.05, "fit_seconds": 0.0}}}]
    entry["models"]["trending"] = copy.deepcopy(entry["models"]["popularity"])
    for name, model in entry["models"].items():
        zero = 0.30 if name in ("popularity", "trending") else 0.20
        model["user_buckets"] = {"0": _metrics(zero, zero), "1-4": _metrics(0.5 if name == "hybrid" else 0.1, 0.3),
                                 "20+": _metrics(0.1, 0.1)}
        model["zero_history"] = "own" if name in ("popularity", "trending", "hybrid") else "popularity"
    return entry


def test_a_replay_is_judged_by_its_user_steps_and_its_zero_history_users() -> None:
    entry = _replay_entry()
    judged = {t.name.split(" ")[0]: t for t in render_results.targets(entry)}
    assert judged["one"].met is True  # every user-step: above 1.05 x the best peer
    assert judged["zero-history"].met is False and "popularity" in judged["zero-history"].detail
    assert judged["users"].met is True  # users with 1-4 earlier interactions
    section = render_results.dataset_section("toy_replay", entry)
    assert "| model | all user-steps R@20 / N@20 | users 0 R / N |" in section
    assert "0.2000 / 0.2000 (100)" in section and "| popularity |" in section
    assert "[a, b) | 50 | 10 | 1 | 3 | 0.2000 | 0.1000 (popularity) |" in section


def test_check_and_rewrite(tmp_path: Path) -> None:
    import json

    source = tmp_path / "cold_start.json"
    source.write_text(json.dumps(_results(copy.deepcopy(WINNER))))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{render_results.BEGIN}\nstale\n{render_results.END}\n\nafter\n")
    args = ["--json", str(source), "--readme", str(readme)]
    assert render_results.main([*args, "--check"]) == 1
    assert render_results.main(args) == 0
    assert render_results.main([*args, "--check"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith(f"{render_results.END}\n\nafter\n") and "stale" not in text
    missing = tmp_path / "absent.json"
    assert render_results.main(["--json", str(missing), "--readme", str(readme), "--check"]) == 1
    render_results.main(["--json", str(missing), "--readme", str(readme)])
    assert "Not generated yet" in render_results.section_of(readme.read_text())


def test_the_scale_page_matches_its_json() -> None:
    scale = ROOT / "benchmarks" / "results" / "scale.json"
    doc = ROOT / "docs" / "scale.md"
    if not scale.exists():
        pytest.skip("benchmarks/results/scale.json not generated yet (python benchmarks/scale.py)")
    import json

    expected = render_results.render_scale(json.loads(scale.read_text()), "results/scale.json")
    assert render_results.section_of(doc.read_text()) == expected, "docs/scale.md is out of date; " + render_results.FIX


def test_readme_summary_matches_committed_results() -> None:
    if not RESULTS.exists():
        pytest.skip(f"{RESULTS.relative_to(ROOT)} not generated yet")
    readme = (ROOT / "README.md").read_text()
    summary = render_results.section_of(readme, render_results.SUMMARY_BEGIN, render_results.SUMMARY_END)
    assert summary == render_results.render_summary(json.loads(RESULTS.read_text())), (
        "README.md's cold-start summary is out of date; run: python scripts/render_results.py"
    )


def test_readme_explanation_is_the_committed_one() -> None:
    """The README's real explanation is rendered from cold_start.json (the bundled data's hybrid, as
    hybrid-eval explained it), and its contributions and bias add up to the score it shows."""
    if not RESULTS.exists():
        pytest.skip(f"{RESULTS.relative_to(ROOT)} not generated yet")
    results = json.loads(RESULTS.read_text())
    readme = (ROOT / "README.md").read_text()
    shown = render_results.section_of(readme, render_results.EXAMPLE_BEGIN, render_results.EXAMPLE_END)
    assert shown == render_results.render_example(results), (
        "README.md's explanation example is out of date; run: python scripts/render_results.py")
    examples = results["datasets"][render_results.EXAMPLE_CONFIG]["models"]["hybrid"]["explained"]
    example = next(e for e in examples if e["example"] == "a user with history")
    assert example["bias"] + sum(example["contributions"].values()) == pytest.approx(example["score"], abs=1e-4)
    assert str(example["user"]) in shown and example["because"] in shown


def test_explore_verdict_says_met_missed_or_off() -> None:
    from render_sections import verdict

    def entry(policy: str | None, slots: int, warmed: int, cost: float, base_warmed: int = 2) -> dict[str, Any]:
        rows = [{"policy": None, "slots": 0, "warmed": base_warmed, "warmed_ratio": 1.0, "click_cost": 0.0},
                {"policy": "ucb", "slots": 1, "warmed": warmed, "click_cost": cost,
                 "warmed_ratio": warmed / base_warmed if base_warmed else None}]
        return {"chosen": {"policy": policy, "slots": slots}, "test": rows}

    assert "**met**" in verdict(entry("ucb", 1, 4, 0.01), 0.03)
    assert "**missed**" in verdict(entry("ucb", 1, 4, 0.05), 0.03)  # too costly
    assert "**missed**" in verdict(entry("ucb", 1, 2, 0.0), 0.03)  # not 1.5x
    assert "**met**" in verdict(entry("ucb", 1, 3, 0.0, base_warmed=0), 0.03)  # m = 0 warms none
    assert "**missed**" in verdict(entry("ucb", 1, 0, 0.0, base_warmed=0), 0.03)
    assert "m = 0" in verdict(entry(None, 0, 0, 0.0), 0.03)


def test_the_scale_page_renders_the_fit_scaling_json() -> None:
    fit = ROOT / "benchmarks" / "results" / "fit_scaling.json"
    if not fit.exists():
        pytest.skip("benchmarks/results/fit_scaling.json not generated yet (python benchmarks/fit_scaling.py --quick)")
    expected = render_results.render_fit_scale(json.loads(fit.read_text()), "results/fit_scaling.json")
    section = render_results.section_of((ROOT / "docs" / "scale.md").read_text(), render_results.FIT_BEGIN,
                                        render_results.FIT_END)
    assert section == expected, "docs/scale.md's fit-scaling section is out of date; " + render_results.FIX


def test_the_fit_projection_scales_each_stage_by_its_own_exponents() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_scaling", ROOT / "benchmarks" / "fit_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def point(interactions: int, items: int, seconds: float) -> dict[str, Any]:
        return {"interactions": interactions, "users": interactions // 20, "items": items, "hybrid_fit_seconds": seconds,
                "text_dim": 384, "stages": {"gate": {"seconds": seconds}, "index": {"seconds": 0.001},
                                            "total": {"seconds": seconds}}}

    by_x = [point(1_000_000, 1000, 2.0), point(2_000_000, 1000, 4.0)]  # linear in interactions
    by_n = [point(1_000_000, 1000, 2.0), point(1_000_000, 4000, 4.0)]  # square root in items
    assert module.exponent(by_x, "interactions") == 1.0 and module.exponent(by_n, "items") == 0.5
    projected = module.projection(by_x, by_n)
    gate = projected["stages"]["gate"]
    assert gate["exponent_interactions"] == 1.0 and gate["exponent_items"] == 0.5
    # From the 4,000-item point: × 1000 in interactions, × 2500 in items (square root: × 50).
    assert gate["seconds_projected"] == pytest.approx(4.0 * 1000 * 50, rel=1e-6)
    assert projected["stages"]["index"]["exponent_items"] == 0.0  # under 10 ms: no measurable trend
    assert projected["arrays_gib"]["a dense items x items matrix (float32), which no stage holds"] > 1e5


def test_the_one_list_is_shown_at_every_new_item_share() -> None:
    results = _results(copy.deepcopy(WINNER))
    base = results["datasets"]["toy"]
    base["split"] = "cold_items(20% seed 0, 50% of them unsold)"
    few = copy.deepcopy(base)
    few["split"] = "cold_items(5% seed 0, 50% of them unsold)"
    few["models"]["hybrid"]["all"]["recall@20"] = 0.001  # loses the one list when new items are few
    results["datasets"]["toy@0.05"] = few
    text = render_results.render(results)
    assert "### The one list at every new-item share" in text
    assert "| toy | 0.05 | 0.0010 / 0.0250 | gf_cf 0.0300 / 0.0220 | no |" in text
    assert "| toy | 0.2 | 0.0364 / 0.0250 | gf_cf 0.0300 / 0.0220 | yes |" in text
