"""hybrid-eval end to end: the files it writes, and every metric recomputed from them alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import DATA_ROOT, data_folder

from hybrid.config import EvalConfig, ExperimentConfig, SplitConfig
from hybrid.data.datasets import DataBundle
from hybrid.evaluation.evaluate import main
from hybrid.evaluation.run import resolve_seeds, run_split
from hybrid.models.base import MODELS, FitData, Recommender
from hybrid.retrieval.ranking import ranked, top_k, top_k_masked

CONFIGS = Path(__file__).parents[1] / "configs"


def recompute(out: Path, model: str, k: int, group: str, cold_axis: str) -> dict[str, float]:
    """Recall/Precision/NDCG/MRR/HitRate@k from the CSV files only, written out longhand."""
    rankings = pd.read_csv(out / f"rankings_{model}.csv")
    test = pd.read_csv(out / "test.csv")
    items = pd.read_csv(out / "items.csv").set_index("item")
    users = pd.read_csv(out / "users.csv").set_index("user")
    if group in ("cold", "warm") and cold_axis == "user":
        test = test[test["user"].map(users["cold"]) == (group == "cold")]
    elif group in ("cold", "warm"):
        test = test[test["item"].map(items["cold"]) == (group == "cold")]
    truth = test.groupby("user")["item"].apply(set)
    lists = rankings[rankings["rank"] <= k].sort_values(["user", "rank"]).groupby("user")["item"].apply(list)
    sums = dict.fromkeys(("recall", "precision", "ndcg", "mrr", "hit_rate"), 0.0)
    for user, relevant in truth.items():
        ranked = lists[user]
        hits = [item in relevant for item in ranked]
        sums["recall"] += sum(hits) / len(relevant)
        sums["precision"] += sum(hits) / k
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        sums["ndcg"] += dcg / sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        sums["mrr"] += next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0)
        sums["hit_rate"] += any(hits)
    return {f"{name}@{k}": value / len(truth) for name, value in sums.items()}


@pytest.mark.slow
def test_ml100k_temporal_files_reproduce_every_metric(tmp_path: Path) -> None:
    data_folder("ml-100k")
    out = tmp_path / "run"
    main(["--config", str(CONFIGS / "ml100k_temporal.yaml"), "--data-root", str(DATA_ROOT), "--out", str(out),
          "--models", "popularity,random", "--device", "cpu", "--log-level", "WARNING"])
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "ml-100k" and results["k"] == [10, 20]
    assert set(results["models"]) == {"popularity", "random"}
    known = pd.read_csv(out / "known_items.csv")
    for model in ("popularity", "random"):
        entry = results["models"][model]
        # the catalogue at the cut lists a film from its first rating: no new item, none of them in the test
        assert {"all", "buckets", "user_buckets", "fit_seconds", "rank_seconds"} <= set(entry)
        assert "cold" not in entry
        entry = entry.get("per_seed", [entry])[0]  # the top-level files are the first seed's
        ranked = pd.read_csv(out / f"rankings_{model}.csv")
        leaked = ranked.merge(known, on=["user", "item"])
        assert leaked.empty, "a known (training) item was ranked"
        for group in ("all",):
            for k in (10, 20):
                expected = recompute(out, model, k, group, results["cold_axis"])
                for key, value in expected.items():
                    assert entry[group][key] == pytest.approx(value, abs=1e-6), (model, group, key)
    assert results["models"]["popularity"]["all"]["recall@20"] > results["models"]["random"]["all"]["recall@20"]
    catalogue = results["catalogue"]
    assert catalogue["new_items"] == 0 and catalogue["unreachable_interactions"] > 0  # films first rated later
    assert (out / "results.md").read_text().count("| popularity |") == 3
    assert (out / "recall_by_bucket.png").stat().st_size > 10_000


def test_bundled_default_runs_offline_with_no_data_root(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "data: {name: online_retail}\n"
        "split: {kind: temporal, at: '2011-11-15', valid_per_user: 0}\n"
        "eval: {k: [20], max_users: 300, candidates: 20}\n"
        "models: [popularity, random]\n"
    )
    out = tmp_path / "run"
    main(["--config", str(config), "--out", str(out), "--device", "cpu", "--log-level", "WARNING"])
    results = json.loads((out / "results.json").read_text())
    assert results["n_test_users"] == 300
    pop, rnd = results["models"]["popularity"], results["models"]["random"]
    assert pop["all"]["recall@20"] > rnd["all"]["recall@20"]
    # products first sold after the cut are not listed at the cut (the item table comes from invoices)
    assert "cold" not in pop and results["catalogue"]["unreachable_interactions"] > 0
    # LLMRank protocol: 1 held-out item among 20; random lands in the top 5 about a quarter of the time
    assert pop["candidates"]["users"] == 300
    assert 0.1 < rnd["candidates"]["recall@5"] < 0.4
    assert pop["candidates"]["ndcg@10"] > rnd["candidates"]["ndcg@10"]
    assert np.isfinite(pop["buckets"]["100+"]["recall@20"])


# ---------------------------------------------------------------- cold_only / warm_only, seeds
def fixed_score(user: np.ndarray | int, item: np.ndarray | int) -> np.ndarray:
    """A closed-form score from the raw ids: distinct over items for every user."""
    return ((np.asarray(user) * 7919 + np.asarray(item) * 104729) % 1000) / 1000.0


class FixedScores(Recommender):
    """Scores :func:`fixed_score`, so a ranking can be redone by hand from the CSV files."""

    def fit(self, data: FitData) -> FixedScores:
        self.user_ids_ = np.asarray(data.train.user_ids, dtype=np.int64)
        self.item_ids_ = np.asarray(data.train.item_ids, dtype=np.int64)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return torch.as_tensor(fixed_score(self.user_ids_[users][:, None], self.item_ids_[None, :]), dtype=torch.float32)


FIXED = "fixed_scores_test"
MODELS.setdefault(FIXED, lambda params: FixedScores())


def tiny_bundle(n_users: int = 40, n_items: int = 30, per_user: int = 8) -> DataBundle:
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 1_000_000 + 100 * u + t)
            for u in range(n_users) for t, i in enumerate(rng.choice(n_items, per_user, replace=False))]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(weight=1.0)
    text = pd.Series([f"item {i}" for i in range(n_items)], index=pd.Index(range(n_items)))
    return DataBundle("tiny", frame, text.rename("text"), text.rename("title"))


def tiny_config(seeds: int | None = 1, kind: str = "cold_items", k: tuple[int, ...] = (3, 12)) -> ExperimentConfig:
    return ExperimentConfig(
        name="tiny", split=SplitConfig(kind=kind, cold_fraction=0.3, n=1, valid_per_user=1, seed=0),  # type: ignore[arg-type]
        eval=EvalConfig(k=list(k), seeds=seeds), models=[FIXED, "popularity"], device="cpu",
    )


def longhand(lists: dict, truth: pd.Series, k: int) -> dict[str, float]:
    """The five metrics of ``lists`` (user -> ranked items) against ``truth`` (user -> set), longhand."""
    sums = dict.fromkeys(("recall", "precision", "ndcg", "mrr", "hit_rate"), 0.0)
    for user, relevant in truth.items():
        hits = [item in relevant for item in lists[user][:k]]
        sums["recall"] += sum(hits) / len(relevant)
        sums["precision"] += sum(hits) / k
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        sums["ndcg"] += dcg / sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        sums["mrr"] += next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0)
        sums["hit_rate"] += any(hits)
    return {f"{name}@{k}": value / len(truth) for name, value in sums.items()}


def by_hand(out: Path, cold: bool, k_max: int) -> tuple[dict, pd.Series]:
    """Each tested user's FixedScores list among the cold (or warm) unseen items only, and the
    cold (or warm) test items of the users who have any."""
    test, known = pd.read_csv(out / "test.csv"), pd.read_csv(out / "known_items.csv")
    items = pd.read_csv(out / "items.csv")
    allowed = set(items.loc[items["cold"] == cold, "item"])
    truth = test[test["item"].isin(allowed)].groupby("user")["item"].apply(set)
    seen = known.groupby("user")["item"].apply(set)
    lists = {
        user: sorted(allowed - seen.get(user, set()), key=lambda i: -fixed_score(user, i))[:k_max]
        for user in test["user"].unique()
    }
    return lists, truth


def test_cold_only_and_warm_only_rank_among_their_own_items_as_by_hand(tmp_path: Path) -> None:
    out = tmp_path / "run"
    results = run_split(tiny_config(), tiny_bundle(), out)
    items = pd.read_csv(out / "items.csv")
    n_cold = int(items["cold"].sum())
    assert 0 < n_cold < 12, "the test wants fewer cold items than k, so that cold_only lists run short"
    known = pd.read_csv(out / "known_items.csv")
    for model in (FIXED, "popularity"):
        entry = results["models"][model]
        for group in ("cold_only", "warm_only"):
            assert set(entry[group]) == set(entry["all"]), group  # same metric keys at every k
            ranked = pd.read_csv(out / f"rankings_{model}.{group}.csv")
            assert set(ranked["item"].map(items.set_index("item")["cold"])) == {group == "cold_only"}
            assert ranked.merge(known, on=["user", "item"]).empty, "a known item was ranked"
    entry = results["models"][FIXED]
    for group in ("cold_only", "warm_only"):
        lists, truth = by_hand(out, group == "cold_only", 12)
        ranked = pd.read_csv(out / f"rankings_{FIXED}.{group}.csv").sort_values(["user", "rank"])
        assert ranked.groupby("user")["item"].apply(list).to_dict() == {u: v for u, v in lists.items() if v}
        assert entry[group]["users"] == len(truth) <= results["n_test_users"]  # users without any left out
        for k in (3, 12):
            for key, value in longhand(lists, truth, k).items():
                assert entry[group][key] == pytest.approx(value, abs=1e-6), (group, key)
    assert entry["cold_only"]["users"] < results["n_test_users"]
    # a cold item can only move up when the warm ones are taken out of its list
    assert entry["cold_only"]["recall@3"] > entry["cold"]["recall@3"]
    table = (out / "results.md").read_text()
    for column in ("cold_only recall@12", "cold_only ndcg@12", "warm_only recall@12", "warm_only ndcg@12"):
        assert column in table
    assert "±" not in table and "_std" not in (out / "results.json").read_text() and "per_seed" not in entry


def test_no_restricted_rankings_without_cold_items(tmp_path: Path) -> None:
    results = run_split(tiny_config(kind="leave_last", k=(3,)), tiny_bundle(), tmp_path / "run")
    assert not results["models"][FIXED].keys() & {"cold_only", "warm_only"}
    assert not list((tmp_path / "run").glob("rankings_*_only.csv"))


def test_top_k_masked_scores_once_and_restricts_the_full_ranking() -> None:
    calls = []

    class Counting(FixedScores):
        def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
            calls.append(len(users))
            return super().score(users, history)

    model = Counting()
    model.user_ids_, model.item_ids_ = np.arange(5), np.arange(10)
    history = sp.csr_matrix((np.ones(5, np.float32), (np.arange(5), 2 * np.arange(5))), shape=(5, 10))  # even items
    odd = np.arange(10) % 2 == 1
    ranked = top_k_masked(model, np.arange(5), history, 10, {"all": None, "odd": odd}, batch_size=3)
    assert calls == [3, 2]
    full, (items, scores) = ranked["all"][0], ranked["odd"]
    assert items.shape == (5, 5) and odd[items].all() and np.isfinite(scores).all()
    for row in range(5):  # the odd list is the full list with the even items removed
        assert items[row].tolist() == [i for i in full[row] if i % 2 == 1]
    assert np.array_equal(top_k(model, np.arange(5), history, 10, candidates=np.flatnonzero(odd))[0], items)


def test_ties_are_broken_in_the_seeded_order_as_if_every_row_were_permuted() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 30), generator=generator).float()  # ties everywhere
    scores[:10] = torch.rand(10, 30, generator=generator)  # and rows with none
    scores[10:12, 5:] = -torch.inf  # fewer finite items than k
    order = torch.randperm(30, generator=generator)
    values, items = ranked(scores, 8, order)
    expected_values, positions = torch.topk(scores[:, order], 8, dim=1)
    assert torch.equal(values, expected_values) and torch.equal(items, order[positions])
    assert torch.equal(ranked(scores, 30, order)[1], order[torch.topk(scores[:, order], 30, dim=1)[1]])
    flat = torch.zeros(1, 30)  # a model that cannot tell items apart gets the seeded order, not index order
    assert ranked(flat, 5, order)[1].tolist() != [[0, 1, 2, 3, 4]]


def test_seeds_average_every_metric_with_sample_std_and_keep_each_seed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    results = run_split(tiny_config(seeds=2), tiny_bundle(), out)
    assert results["seeds"] == [0, 1] and results["config"]["eval"]["seeds"] == 2
    for s in (0, 1):
        seed_run = json.loads((out / f"seed_{s}" / "results.json").read_text())
        assert seed_run["config"]["split"]["seed"] == s and seed_run["config"]["seed"] == s
        for model in (FIXED, "popularity"):  # compared as JSON: NaN != NaN
            assert json.dumps(results["models"][model]["per_seed"][s]) == json.dumps(seed_run["models"][model])
    assert (out / f"rankings_{FIXED}.csv").read_text() == (out / "seed_0" / f"rankings_{FIXED}.csv").read_text()
    assert (out / "test.csv").read_text() == (out / "seed_0" / "test.csv").read_text()
    assert (out / "test.csv").read_text() != (out / "seed_1" / "test.csv").read_text()
    differs = 0
    for model in (FIXED, "popularity"):
        entry = results["models"][model]
        assert len(entry["per_seed"]) == 2
        pairs = [(entry[g], [r[g] for r in entry["per_seed"]]) for g in ("all", "warm", "cold", "cold_only", "warm_only")]
        pairs += [(entry["buckets"][b], [r["buckets"][b] for r in entry["per_seed"]]) for b in entry["buckets"]]
        for merged, runs in pairs:
            for key in runs[0]:
                values = [r[key] for r in runs]
                assert merged[key] == pytest.approx(np.mean(values), nan_ok=True), key
                if key == "users":
                    assert "users_std" not in merged
                else:
                    assert merged[f"{key}_std"] == pytest.approx(np.std(values, ddof=1), nan_ok=True), key
                    differs += values[0] != values[1]
        assert entry["fit_seconds"] == pytest.approx(np.mean([r["fit_seconds"] for r in entry["per_seed"]]), abs=1e-3)
    assert differs > 10, "the two seeds should give different splits"
    table = (out / "results.md").read_text()
    cold_only = results["models"][FIXED]["cold_only"]
    assert f"{cold_only['recall@12']:.4f} ± {cold_only['recall@12_std']:.4f}" in table


def test_seeds_auto_is_three_on_a_small_data_set(tmp_path: Path) -> None:
    results = run_split(tiny_config(seeds=None, k=(3,)), tiny_bundle(n_users=30), tmp_path / "run")
    assert results["seeds"] == [0, 1, 2] and results["config"]["eval"]["seeds"] == 3
    assert len(results["models"][FIXED]["per_seed"]) == 3
    assert [p.name for p in sorted((tmp_path / "run").glob("seed_*"))] == ["seed_0", "seed_1", "seed_2"]


def test_resolve_seeds_threshold_and_validation() -> None:
    def bundle(n_users: int) -> DataBundle:
        frame = pd.DataFrame({"user": np.arange(n_users), "item": np.zeros(n_users, int)})
        return DataBundle("n", frame, pd.Series(dtype=str), pd.Series(dtype=str))

    assert resolve_seeds(EvalConfig(), bundle(4999)) == 3
    assert resolve_seeds(EvalConfig(), bundle(5000)) == 1
    assert resolve_seeds(EvalConfig(seeds=4), bundle(5000)) == 4
    with pytest.raises(ValueError, match=r"eval\.seeds"):
        resolve_seeds(EvalConfig(seeds=0), bundle(10))


class Spy(FixedScores):
    """Records what ``fit`` receives."""

    received: ClassVar[list[FitData]] = []

    def fit(self, data: FitData) -> Spy:
        Spy.received.append(data)
        return super().fit(data)


SPY = "spy_test"
MODELS.setdefault(SPY, lambda params: Spy())


def test_nothing_about_the_test_split_reaches_fit(tmp_path: Path) -> None:
    """A model gets what HybridRecommender.fit gets: interactions, texts, the whole catalogue (items
    nobody bought included), the same whatever the split; never the test rows, kind or size."""
    import dataclasses

    bundle = tiny_bundle()
    unbought = pd.Series([f"unbought {i}" for i in range(30, 35)], index=pd.Index(range(30, 35)))
    bundle.item_text = pd.concat([bundle.item_text, unbought]).rename("text")
    bundle.item_titles = bundle.item_text.rename("title")
    bundle.independent_catalogue = True  # a table of its own lists unbought items at every cut
    assert {f.name for f in dataclasses.fields(FitData)} == {
        "train", "valid", "item_text", "item_titles", "user_text", "device", "seed"}
    Spy.received.clear()
    splits = {
        "cold_items": SplitConfig(kind="cold_items", cold_fraction=0.3, seed=0),
        "cold_items seed 1": SplitConfig(kind="cold_items", cold_fraction=0.3, seed=1),
        "temporal": SplitConfig(kind="temporal", fraction=0.7),
        "leave_last": SplitConfig(kind="leave_last", n=2),
    }
    catalogues = {}
    for name, split in splits.items():
        config = dataclasses.replace(tiny_config(), split=split, models=[SPY])
        out = tmp_path / name.replace(" ", "_")
        catalogues[name] = run_split(config, bundle, out)["catalogue"]
        data = Spy.received[-1]
        test = pd.read_csv(out / "test.csv")
        assert list(data.train.item_ids) == list(range(35)), name  # the catalogue, whatever the split
        assert list(data.train.user_ids) == list(range(40)), name
        assert data.item_text[30:] == list(unbought), name
        fitted = {(data.train.user_ids[u], data.train.item_ids[i]) for part in (data.train, data.valid)
                  for u, i in zip(part.users, part.items, strict=True)}
        assert not fitted & set(zip(test["user"], test["item"], strict=True)), name
    assert catalogues["cold_items"]["items"] == 35
    # unbought items and the unsold half of the 9 held-out items: new, and nobody buys them in test
    assert catalogues["cold_items"]["new_items"] == 5 + 9
    assert catalogues["cold_items"]["unsold_new_items"] == 5 + round(0.5 * 9)
    assert catalogues["leave_last"]["new_items"] == catalogues["leave_last"]["unsold_new_items"] == 5


def test_an_item_seen_only_in_validation_is_not_cold(tmp_path: Path) -> None:
    """Every model may fit on train + validation, so "cold" (the groups, items.csv, the catalogue's
    new items) means neither: item 99 is user 0's validation item and user 1's test item."""
    import dataclasses

    bundle = tiny_bundle()
    frame = bundle.interactions
    last0 = frame.loc[frame["user"] == 0, "timestamp"].max()
    last1 = frame.loc[frame["user"] == 1, "timestamp"].max()
    extra = pd.DataFrame({"user": [0, 0, 1], "item": [99, 98, 99], "timestamp": [last0 + 1, last0 + 2, last1 + 1],
                          "weight": 1.0})  # user 0: 99 then 98 (98 is test, 99 validation); user 1: 99 is test
    bundle.interactions = pd.concat([frame, extra], ignore_index=True)
    bundle.item_text = pd.concat([bundle.item_text, pd.Series(["item 98", "item 99"], index=[98, 99])]).rename("text")
    bundle.item_titles = bundle.item_text.rename("title")
    config = dataclasses.replace(tiny_config(), split=SplitConfig(kind="leave_last", n=1, valid_per_user=1), models=[FIXED])
    out = tmp_path / "run"
    run_split(config, bundle, out)
    items = pd.read_csv(out / "items.csv").set_index("item")
    valid_only = 99
    assert items.loc[valid_only, "train_count"] == 1 and not items.loc[valid_only, "cold"]
