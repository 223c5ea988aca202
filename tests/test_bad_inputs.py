"""Bad input, case by case: each gets a clear error naming the field and value, or a documented,
logged behaviour; nothing crashes deeper in the stack and nothing changes results silently."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid import HybridRecommender
from hybrid.config import load_config
from hybrid.data.interactions import Interactions, UnknownIdError

BASE = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"], "timestamp": [1, 2, 3, 4]})


# --------------------------------------------------------------------------- Interactions.build
@pytest.mark.parametrize(("frame", "error", "match"), [
    (BASE.drop(columns="user"), ValueError, "user"),
    (BASE.assign(user=["a", None, "b", "b"]), ValueError, "column 'user' has a null id at row 1"),
    (BASE.assign(item=[1.0, 2.5, 1.0, 3.0]), ValueError, "column 'item' has a non-integer numeric id 2.5 at row 1"),
    (BASE.assign(weight=[1, np.nan, 1, 1]), ValueError, "column 'weight' has a non-numeric or missing weight"),
    (BASE.assign(weight=[1, np.inf, 1, 1]), ValueError, "column 'weight' has a non-finite weight inf at row 1"),
    (BASE.assign(weight=[1, -2, 1, 1]), ValueError, "column 'weight' has a negative weight -2.0 at row 1"),
    (BASE.assign(weight=["1", "2", "x", "1"]), ValueError, "non-numeric or missing weight 'x' at row 2"),
    (BASE.assign(timestamp=["2020-01-01", "soon", "2020-01-02", "2020-01-03"]), ValueError,
     "unparseable timestamp 'soon' at row 1"),
    (BASE.assign(timestamp=[1.0, np.inf, 3.0, 4.0]), ValueError, "non-finite timestamp inf at row 1"),
    (BASE.assign(timestamp=[1, None, 3, 4]), ValueError, "missing timestamp at row 1"),
    (BASE.assign(timestamp=[True, False, True, True]), ValueError, "holds booleans, not timestamps"),
    (pd.DataFrame({"user": [1, "1", 2, 2], "item": list("xyxz")}), ValueError, r"mixes id types: 1 \(number\) at row 0 and '1' \(str\) at row 1"),
    (pd.DataFrame({"user": ["", "a", "b", "b"], "item": list("xyxz")}), ValueError, "column 'user' has an empty id at row 0"),
    (BASE.iloc[:0], ValueError, r"interactions are empty \(0 rows\)"),
])
def test_bad_interaction_tables_are_refused_by_name(frame, error, match) -> None:
    with pytest.raises(error, match=match):
        Interactions.from_frame(frame)


def test_a_source_of_the_wrong_type_and_a_missing_file() -> None:
    with pytest.raises(TypeError, match=r"interactions must be a DataFrame, a CSV/Parquet path or a datasets\.Dataset, got list"):
        Interactions.build([("a", "x")])
    with pytest.raises(FileNotFoundError, match=r"interactions file .*nope\.csv does not exist"):
        Interactions.build("nope.csv")


@pytest.mark.parametrize(("stamps", "expected", "logged"), [
    ([1.5, 2.25, 3.0, 4.75], [1, 2, 3, 4], "3 timestamps have fractions of a second, floored"),
    ([1_600_000_000_000, 1_600_000_001_000, 1_600_000_002_000, 1_600_000_003_000],
     [1_600_000_000, 1_600_000_001, 1_600_000_002, 1_600_000_003], "look like Unix milliseconds; converted to seconds"),
    ([1.6e15, 1.6e15 + 1e6, 1.6e15 + 2e6, 1.6e15 + 3e6], [1_600_000_000, 1_600_000_001, 1_600_000_002, 1_600_000_003],
     "look like Unix microseconds"),
])
def test_float_and_subsecond_timestamps_are_converted_and_logged(stamps, expected, logged, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="hybrid.data.interactions"):
        data = Interactions.from_frame(BASE.assign(timestamp=stamps))
    assert sorted(data.timestamps.tolist()) == expected
    assert logged in caplog.text


def test_duplicates_are_merged_and_logged_unicode_ids_kept(caplog) -> None:
    frame = pd.DataFrame({"user": ["ü", "ü", "日本", "日本"], "item": ["🙂", "🙂", "x", "y"], "timestamp": [1, 2, 3, 4]})
    with caplog.at_level(logging.INFO, logger="hybrid.data.interactions"):
        data = Interactions.from_frame(frame)
    assert len(data) == 3 and "ü" in data.user_ids and "🙂" in data.item_ids
    assert "merged" in caplog.text  # the duplicate (ü, 🙂) is summed, and the log says so
    assert data.weights[data.item_index(["🙂"])[0] == data.items].tolist() == [2.0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.integers(-3, 3), st.text(max_size=3)), st.integers(0, 5),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 3))),
                min_size=1, max_size=12))
def test_any_table_builds_or_raises_a_clear_error(rows) -> None:
    """Hypothesis: random ids (ints, strings, blanks, both mixed), weights (NaN, inf, negative):
    either a valid Interactions holding every distinct pair, or a ValueError, never anything else."""
    frame = pd.DataFrame(rows, columns=["user", "item", "weight"])
    try:
        data = Interactions.from_frame(frame)
    except ValueError as error:
        assert "column" in str(error) or "empty" in str(error)
        return
    assert len(data) == len(frame.drop_duplicates(["user", "item"]))
    assert np.isfinite(data.weights).all() and (data.weights >= 0).all()


# --------------------------------------------------------------------------- HybridRecommender
@pytest.fixture(scope="module")
def fitted(tiny_model) -> HybridRecommender:
    return tiny_model[0].copy()


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda r: r.recommend("u0", k=0), ValueError, "k must be a positive integer, got 0"),
    (lambda r: r.recommend("u0", k=2.5), ValueError, "k must be a positive integer, got 2.5"),
    (lambda r: r.recommend("u0", k=True), ValueError, "k must be a positive integer, got True"),
    (lambda r: r.recommend(["u0", "ghost"]), UnknownIdError, r"unknown user ids \['ghost'\]"),
    (lambda r: r.recommend("u0", items=[]), ValueError, "items is empty"),
    (lambda r: r.recommend("u0", items=["s9", "nope"]), UnknownIdError, r"unknown item ids \['nope'\]"),
    (lambda r: r.recommend_for_history([]), ValueError, "items is empty"),
    (lambda r: r.recommend_for_history(["nope"]), UnknownIdError, r"unknown item ids \['nope'\]"),
    (lambda r: r.recommend_for_text("   "), ValueError, "text must be a non-empty string"),
    (lambda r: r.recommend_for_text(42), ValueError, "text must be a non-empty string"),
    (lambda r: r.add_items({"s0": "again"}), ValueError, r"item ids \['s0'\] already exist"),
    (lambda r: r.add_items({"new": ""}), ValueError, r"items \['new'\] have empty text"),
])
def test_bad_calls_on_a_fitted_recommender(fitted, call, error, match) -> None:
    with pytest.raises(error, match=match):
        call(fitted)


def test_a_huge_k_is_capped_and_a_user_with_every_item_seen_is_named(fitted) -> None:
    ids, scores = fitted.recommend("u0", k=10**9)
    assert len(ids) == len(fitted.item_ids_) - 4 and np.isfinite(scores).all()
    seen = fitted.item_ids_[fitted.history_[0].indices].tolist()
    with pytest.raises(ValueError, match=r"users \['u0'\] have seen every item that may be recommended"):
        fitted.recommend("u0", items=seen)


def test_fit_refuses_an_empty_catalogue_and_items_without_text() -> None:
    frame = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"]})
    with pytest.raises(ValueError, match=r"interactions are empty"):
        HybridRecommender(device="cpu").fit(frame.iloc[:0], {"x": "text"})
    with pytest.raises(ValueError, match=r"items \['z'\] have no interactions and empty text"):
        HybridRecommender(device="cpu").fit(frame, {"x": "a", "y": "b", "z": ""})
    with pytest.raises(ValueError, match=r"unknown field|unknown key|sparse_weight must be"):
        HybridRecommender({"sparse_weight": -1.0}, device="cpu").fit(frame, {"x": "a", "y": "b"})


def test_load_of_a_missing_folder_names_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        HybridRecommender.load(tmp_path / "nothing")


# --------------------------------------------------------------------------- config loader
@pytest.mark.parametrize(("text", "match"), [
    ("modles: [popularity]\n", "modles"),
    ("eval: {k: twenty}\n", "eval"),
    ("- just\n- a list\n", "expected a mapping at the top level, got list"),
    ("split: {kind: sideways}\n", "kind"),
    ("data: {item_text: items.csv}\n", "need data.interactions"),
])
def test_bad_configs_name_the_key(text, match, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path)


def test_a_missing_config_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_own_data_paths_are_relative_to_the_config(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data: {interactions: ../i.csv}\n")
    assert Path(load_config(path).data.interactions) == (tmp_path / "i.csv").resolve()
