"""The time-true evaluation: what a model may know at the cut, and the rolling-origin replay.

Tiny data sets built here, where the right answer is known, and ml-latest-small (skipped where
../shared/data is absent) for the tags written by test users.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.config import DataConfig, EvalConfig, ExperimentConfig, SplitConfig
from hybrid.data.bundle import DataBundle
from hybrid.data.datasets import load_dataset
from hybrid.data.splits import replay_splits
from hybrid.data.written import with_written
from hybrid.evaluation.prepare import canonical_frame, prepare, prepare_split
from hybrid.evaluation.run import run_split
from hybrid.models.base import FitData
from hybrid.models.trending import Trending

DAY = 86_400
T0 = 1_600_000_000  # 2020-09-13
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def experiment(split: SplitConfig, models: list[str] | None = None) -> ExperimentConfig:
    return ExperimentConfig(name="t", data=DataConfig(name="tiny"), split=split,
                            eval=EvalConfig(k=[2], seeds=1), models=models or ["popularity"])


def tiny_bundle(written: pd.DataFrame | None = None, independent: bool = False, order_only: bool = False) -> DataBundle:
    """Users 0-7 buy items a-d over days 0-9 ("a" the most); item "e" is first sold on day 12, user 9
    is first seen on day 12; item "f" never sells."""
    rows = [(u, item, T0 + day * DAY) for u in range(6) for item, day in (("a", u), ("b", u + 1), ("c", u + 2))]
    rows += [(6, "a", T0), (7, "a", T0), (0, "d", T0 + 9 * DAY), (1, "d", T0 + 9 * DAY), (2, "e", T0 + 12 * DAY), (9, "a", T0 + 12 * DAY),
             (3, "e", T0 + 16 * DAY), (4, "d", T0 + 16 * DAY)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    if order_only:
        frame = frame.assign(order=frame.groupby("user").cumcount()).drop(columns="timestamp")
    items = pd.Index(["a", "b", "c", "d", "e", "f"], name="item")
    text = pd.Series([f"item {i}" for i in items], index=items)
    return DataBundle("tiny", frame, text, text, written=written, independent_catalogue=independent)


def test_a_tag_written_after_the_cut_never_reaches_item_text() -> None:
    written = pd.DataFrame({"user": [0, 3, 5], "item": ["a", "e", "c"], "text": ["early", "late", "before"],
                            "timestamp": [T0, T0 + 16 * DAY, T0 + 7 * DAY]})
    bundle = tiny_bundle(written, independent=True)
    prepared = prepare(bundle, experiment(SplitConfig(kind="temporal", at="2020-09-24", valid_per_user=0)), "cpu")
    ids = list(prepared.fit_data.train.item_ids)
    texts = dict(zip(ids, prepared.fit_data.item_text, strict=True))
    assert texts["a"] == "item a. Tags: early"
    assert texts["c"] == "item c. Tags: before"
    assert texts["e"] == "item e"  # user 3 tagged "e" in the test period, with the test interaction


def test_a_held_out_items_tags_stay_out_on_a_random_cold_item_split() -> None:
    frame = tiny_bundle().interactions
    written = frame.assign(text="tag " + frame["item"]).drop(columns="timestamp")
    bundle = dataclasses.replace(tiny_bundle(), written=written)
    split = SplitConfig(kind="cold_items", cold_fraction=0.4, unsold_fraction=0.0, n=1, valid_per_user=0)
    prepared = prepare(bundle, experiment(split), "cpu")
    test_pairs = set(zip(prepared.split.test["user"], prepared.split.test["item"], strict=True))
    for item, text in zip(prepared.fit_data.train.item_ids, prepared.fit_data.item_text, strict=True):
        if item in prepared.split.cold_items:
            assert "Tags" not in text
    assert test_pairs  # and no tag of a test pair is counted: the tags are per pair, so each item
    # holds its tag only when a training pair of it exists
    known = set(prepared.split.train["item"])
    assert all(("Tags" in text) == (item in known)
               for item, text in zip(prepared.fit_data.train.item_ids, prepared.fit_data.item_text, strict=True))


@pytest.mark.parametrize("kind", ["temporal", "replay"])
def test_order_only_data_is_refused_by_splits_by_time(kind: str) -> None:
    bundle = tiny_bundle(order_only=True)
    with pytest.raises(ValueError, match=r"only an order .* an order is not a time"):
        prepare(bundle, experiment(SplitConfig(kind=kind, fraction=0.5)), "cpu") if kind == "temporal" else \
            replay_splits(canonical_frame(bundle), SplitConfig(kind="replay", fraction=0.5))


def test_order_only_data_splits_by_order_and_models_see_no_time() -> None:
    prepared = prepare(tiny_bundle(order_only=True), experiment(SplitConfig(kind="leave_last", n=1, valid_per_user=0)),
                       "cpu")
    assert prepared.fit_data.train.timestamps is None
    last = prepared.split.test.set_index("user")["item"].to_dict()
    assert last[0] == "d" and last[5] == "c"  # each user's last by order


def test_an_item_first_sold_after_the_cut_joins_the_catalogue_at_the_next_step() -> None:
    bundle = tiny_bundle()
    config = experiment(SplitConfig(kind="replay", start="2020-09-23", step="4D", steps=2, valid_per_user=0))
    every = canonical_frame(bundle)
    steps = replay_splits(every, config.split)
    first = prepare_split(bundle, every, steps[0], config, "cpu")
    second = prepare_split(bundle, every, steps[1], config, "cpu")
    assert "e" not in first.fit_data.train.item_ids  # first sold on day 12, inside step 0
    assert first.unreachable["unreachable_interactions"] == 1
    assert "e" in second.fit_data.train.item_ids  # listed from its first sale on
    assert "f" not in second.fit_data.train.item_ids  # never sold: a derived table never lists it
    assert second.unreachable["unreachable_interactions"] == 0
    independent = prepare_split(dataclasses.replace(bundle, independent_catalogue=True), every, steps[0], config, "cpu")
    assert {"e", "f"} <= set(independent.fit_data.train.item_ids)  # an independent table lists all


def test_a_zero_history_user_in_a_replay_step_is_ranked_and_counted(tmp_path: Path) -> None:
    config = experiment(SplitConfig(kind="replay", start="2020-09-23", step="4D", steps=2, valid_per_user=0),
                        ["popularity", "gf_cf"])
    results = run_split(config, tiny_bundle(), tmp_path)
    assert len(results["steps"]) == 2
    zero = results["models"]["popularity"]["user_buckets"]["0"]
    assert zero["users"] == 1  # user 9, first seen in step 0
    gf_cf = results["models"]["gf_cf"]
    assert gf_cf["zero_history"] == "popularity" and results["models"]["popularity"]["zero_history"] == "own"
    assert gf_cf["user_buckets"]["0"]["recall@2"] == zero["recall@2"] == 1.0  # "a" is the most popular item
    # step 0: user 9 (user 2's only row is with "e", unreachable); step 1: users 3 and 4
    assert results["models"]["popularity"]["all"]["users"] == results["n_test_users"] == 3
    assert results["catalogue"]["unreachable_interactions"] == 1
    rankings = pd.read_csv(tmp_path / "step_0" / "rankings_gf_cf.csv")
    assert 9 in set(rankings["user"])


def test_trending_chooses_the_window_that_validation_rewards() -> None:
    from hybrid.data.interactions import Interactions

    old = [(u, i, T0) for u in range(10, 15) for i in range(25)]  # 25 items bought 5 times long ago
    recent = [(u, 25, T0 + 99 * DAY) for u in range(5, 8)]  # one item bought 3 times lately
    valid = [(u, 25, T0 + 100 * DAY) for u in range(5)]  # what the latest users then buy
    ids = dict(user_ids=range(15), item_ids=range(26))
    train = Interactions.from_frame(pd.DataFrame(old + recent, columns=["user", "item", "timestamp"]), **ids)
    held = Interactions.from_frame(pd.DataFrame(valid, columns=["user", "item", "timestamp"]), **ids)
    model = Trending().fit(FitData(train=train, valid=held))
    assert model.window_days_ is not None and model.window_days_ < 99  # all-time counts would miss it
    assert int(np.argmax(model.scores_.numpy())) == 25


@pytest.mark.skipif(not (DATA / "ml-latest-small").is_dir(), reason="../shared/data/ml-latest-small is absent")
@pytest.mark.parametrize("split", [SplitConfig(kind="temporal", fraction=0.8),
                                   SplitConfig(kind="cold_items", cold_fraction=0.2)])
def test_no_tag_of_a_test_pair_reaches_a_model_on_ml_latest_small(split: SplitConfig) -> None:
    bundle = load_dataset("ml-latest-small", DATA)
    prepared = prepare(bundle, experiment(split), "cpu")
    tags = bundle.written
    test_pairs = pd.MultiIndex.from_frame(prepared.split.test[["user", "item"]])
    rated = pd.MultiIndex.from_frame(bundle.interactions[["user", "item"]])
    pairs = pd.MultiIndex.from_frame(tags[["user", "item"]])
    # what a deployment may read: no tag of a test pair, none from the test period, none of a held-out item
    allowed = ~pairs.isin(test_pairs) & (pairs.isin(rated) | tags["user"].isin(prepared.split.train["user"]).to_numpy())
    allowed &= tags["item"].isin(set(prepared.split.train["item"]) | set(prepared.split.valid["item"])).to_numpy()
    if prepared.split.cut is not None:
        allowed &= (tags["timestamp"] < prepared.split.cut).to_numpy()
    assert int((pairs.isin(test_pairs)).sum()) > 0  # the data does hold tags of test pairs
    expected = with_written(bundle.item_text, tags[allowed], "Tags")
    items = prepared.fit_data.train.item_ids
    assert prepared.fit_data.item_text == expected.reindex(items).tolist()


def test_own_files_take_written_text_and_the_catalogue_key(tmp_path: Path) -> None:
    from hybrid.config import load_config

    bundle = tiny_bundle()
    bundle.interactions.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"item": ["a", "b", "c", "d", "e", "f"], "name": list("ABCDEF")}).to_csv(tmp_path / "items.csv",
                                                                                          index=False)
    pd.DataFrame({"user": [0, 3], "item": ["a", "e"], "note": ["early", "late"],
                  "timestamp": [T0, T0 + 16 * DAY]}).to_csv(tmp_path / "notes.csv", index=False)
    (tmp_path / "c.yaml").write_text(
        "data: {interactions: log.csv, item_text: items.csv, written: notes.csv, written_text_column: note}\n"
        "split: {kind: temporal, at: '2020-09-24', valid_per_user: 0}\nmodels: [popularity]\n")
    config = load_config(tmp_path / "c.yaml")
    from hybrid.evaluation.prepare import load_bundle

    own = load_bundle(config, None)
    assert not own.independent_catalogue and own.written is not None
    prepared = prepare(own, config, "cpu")
    texts = dict(zip(prepared.fit_data.train.item_ids, prepared.fit_data.item_text, strict=True))
    assert texts == {"a": "A. Users wrote: early", "b": "B", "c": "C", "d": "D"}  # "e", "f": not listed yet
