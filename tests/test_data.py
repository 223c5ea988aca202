"""The data layer: construction from every source, id maps, merging, and each bad input's error."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from hybrid.data.interactions import Columns, Interactions, coerce_ids_like, item_texts


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["a", "a", "b", "c", "c"],
            "item": ["x", "y", "x", "y", "z"],
            "timestamp": [10, 20, 30, 40, 50],
            "weight": [1.0, 2.0, 1.0, 1.0, 3.0],
        }
    )


def test_from_frame_builds_maps_csr_and_counts() -> None:
    inter = Interactions.from_frame(frame())
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 5)
    assert list(inter.user_ids) == ["a", "b", "c"]
    m = inter.matrix(binary=False).toarray()
    assert m[inter.user_index(["c"])[0], inter.item_index(["z"])[0]] == 3.0
    assert inter.item_counts().tolist() == [2, 2, 1]
    assert inter.user_counts().tolist() == [2, 1, 2]
    back = inter.to_frame().sort_values(["user", "item"]).reset_index(drop=True)
    assert back[["user", "item", "timestamp"]].equals(frame()[["user", "item", "timestamp"]])


def test_duplicates_are_merged_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    df = pd.concat([frame(), pd.DataFrame({"user": ["a"], "item": ["x"], "timestamp": [5], "weight": [4.0]})])
    with caplog.at_level(logging.INFO, logger="hybrid.data.interactions"):
        inter = Interactions.from_frame(df)
    assert len(inter) == 5
    assert "merged 1 duplicate" in caplog.text
    row = inter.to_frame().query("user == 'a' and item == 'x'").iloc[0]
    assert row["weight"] == 5.0 and row["timestamp"] == 5  # summed, earliest kept


def test_custom_columns_and_declared_universe() -> None:
    df = frame().rename(columns={"user": "customer", "item": "sku", "timestamp": "when"})
    cols = Columns(user="customer", item="sku", timestamp="when", weight=None)
    inter = Interactions.from_frame(df, cols, item_ids=["x", "y", "z", "cold"])
    assert inter.n_items == 4 and inter.item_counts()[3] == 0
    assert np.all(inter.weights == 1.0)


def test_csv_parquet_and_hf_dataset_sources(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    df = frame()
    df.to_csv(tmp_path / "i.csv", index=False)
    df.to_parquet(tmp_path / "i.parquet")
    expected = Interactions.from_frame(df).matrix(binary=False).toarray()
    for source in (tmp_path / "i.csv", str(tmp_path / "i.parquet"), datasets.Dataset.from_pandas(df), df):
        assert np.array_equal(Interactions.build(source).matrix(binary=False).toarray(), expected)


def test_datetime_and_iso_timestamps_become_unix_seconds() -> None:
    df = frame().assign(timestamp=["1970-01-01T00:00:10Z", "1970-01-01 00:00:20", "1970-01-01", "1970-01-02", "1970-01-03"])
    inter = Interactions.from_frame(df)
    assert sorted(inter.timestamps.tolist()) == [0, 10, 20, 86400, 172800]
    dt = frame().assign(timestamp=pd.to_datetime(frame()["timestamp"], unit="s"))
    assert sorted(Interactions.from_frame(dt).timestamps.tolist()) == [10, 20, 30, 40, 50]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.drop(columns=["item"]), r"item column 'item' not found"),
        (lambda d: d.assign(user=["a", None, "b", "c", "c"]), r"column 'user' has a null id at row 1"),
        (lambda d: d.assign(item=["x", "y", np.nan, "y", "z"]), r"column 'item' has a null id at row 2"),
        (lambda d: d.assign(timestamp=[1, 2, "soon", 4, 5]), r"column 'timestamp' has an unparseable timestamp 'soon' at row 2"),
        (lambda d: d.assign(timestamp=[1, 2, 3, None, 5]), r"column 'timestamp' has a missing timestamp at row 3"),
        (lambda d: d.assign(weight=[1.0, -2.0, 1.0, 1.0, 1.0]), r"column 'weight' has a negative weight -2.0 at row 1"),
        (lambda d: d.assign(weight=[1, 1, 1, 1, "lots"]), r"column 'weight' has a non-numeric or missing weight 'lots' at row 4"),
        (lambda d: d.iloc[:0], r"interactions are empty \(0 rows\)"),
    ],
    ids=["missing-column", "null-user", "null-item", "bad-timestamp", "missing-timestamp", "negative-weight", "non-numeric-weight", "empty"],
)
def test_bad_input_names_column_and_row(change, match) -> None:
    with pytest.raises(ValueError, match=match):
        Interactions.from_frame(change(frame()))


def test_explicit_column_that_is_absent_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"timestamp column 'time' not found"):
        Interactions.from_frame(frame(), Columns(timestamp="time"))


def test_id_outside_declared_universe_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"column 'item' has item id 'z' at row 4 that is not in the declared"):
        Interactions.from_frame(frame(), item_ids=["x", "y"])


def test_unknown_ids_raise_naming_them() -> None:
    inter = Interactions.from_frame(frame())
    with pytest.raises(KeyError, match=r"unknown user ids \['nobody'\]"):
        inter.user_index(["a", "nobody"])


def test_item_text_from_mapping_series_and_frame(caplog: pytest.LogCaptureFixture) -> None:
    ids = pd.Index(["x", "y", "z"])
    assert item_texts({"x": "X", "y": "Y", "z": "Z"}, ids) == ["X", "Y", "Z"]
    assert item_texts(pd.Series({"z": "Z", "x": "X"}), ids)[2] == "Z"
    table = pd.DataFrame({"id": ["x", "y", "z"], "title": ["Alien", "Heat", None], "genre": ["sci-fi", "crime", "doc"]})
    with caplog.at_level(logging.WARNING, logger="hybrid.data.interactions"):
        texts = item_texts(table, ids, text_columns=["title", "genre"], template="{title} ({genre})", id_column="id")
        assert texts == ["Alien (sci-fi)", "Heat (crime)", " (doc)".strip()]
        assert item_texts({"x": "X"}, ids) == ["X", "", ""]
    assert "2 of 3 items have no text" in caplog.text
    with pytest.raises(ValueError, match=r"text column\(s\) \['plot'\] not found"):
        item_texts(table, ids, text_columns=["plot"], id_column="id")


def test_ids_are_spelt_as_the_interaction_ids_in_both_directions() -> None:
    """"7" finds integer item 7 and 7 finds string item "7"; what cannot be cast stays as given."""
    numbers, strings = pd.Index([5, 7]), pd.Index(["5", "7"])
    assert coerce_ids_like(pd.Index(["7", "x", 5], dtype=object), numbers).tolist() == [7, "x", 5]
    assert coerce_ids_like(pd.Index([7, "a", True], dtype=object), strings).tolist() == ["7", "a", True]
    assert coerce_ids_like(pd.Index([], dtype=object), numbers).tolist() == []
