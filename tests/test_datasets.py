"""Loaders give the documented counts, and their frames pass the data layer's validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import DATA_ROOT

from hybrid.data import Interactions
from hybrid.datasets import DATA_ROOT_ENV, DataBundle, load_dataset, load_lightgcn


def _shared(folder: str) -> Path:
    location = DATA_ROOT / folder
    if not location.exists():
        pytest.skip(f"real data set {folder!r} not found at {location} (the shared data root is absent)")
    return location


def _check_bundle(bundle: DataBundle, n_rows: int, n_users: int, n_items: int) -> Interactions:
    """Counts, id alignment between the frame and the text series, and data-layer validation."""
    frame = bundle.interactions
    assert len(frame) == n_rows
    assert frame["user"].nunique() == n_users
    assert frame["item"].nunique() == n_items
    assert bundle.item_text.index.dtype == frame["item"].dtype
    assert bundle.item_titles.index.equals(bundle.item_text.index)
    assert frame["item"].isin(bundle.item_text.index).all()
    if bundle.user_text is not None:
        assert bundle.user_text.index.dtype == frame["user"].dtype
        assert frame["user"].isin(bundle.user_text.index).all()
    interactions = Interactions.from_frame(frame)
    assert interactions.n_users == n_users
    assert interactions.n_items == n_items
    return interactions


def test_online_retail_is_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    bundle = load_dataset("online_retail")
    interactions = _check_bundle(bundle, 151_211, 3_235, 2_646)
    assert interactions.has_time
    assert pd.api.types.is_integer_dtype(bundle.interactions["user"])
    assert "85123A" in bundle.item_text.index
    assert bundle.item_text["85123A"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert bundle.user_text is not None
    assert bundle.user_text.str.match(r"^A customer from .+\.$").all()
    first = pd.to_datetime(bundle.interactions["timestamp"].min(), unit="s")
    assert first >= pd.Timestamp("2011-06-01")
    assert interactions.user_counts().min() >= 5
    assert interactions.item_counts().min() >= 5


def test_ml100k() -> None:
    bundle = load_dataset("ml-100k", data_root=_shared("ml-100k").parent)
    interactions = _check_bundle(bundle, 100_000, 943, 1_682)
    assert bundle.interactions["item"].dtype == "int64"
    assert bundle.item_text[1] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert bundle.user_text is not None
    assert bundle.user_text[1] == "A 24-year-old male technician."
    assert len(bundle.user_text) == 943
    assert set(bundle.interactions["weight"].unique()) == {1, 2, 3, 4, 5}
    assert interactions.has_time


def test_ml_latest_small() -> None:
    bundle = load_dataset("ml-latest-small", data_root=DATA_ROOT, path=_shared("ml-latest-small"))
    _check_bundle(bundle, 100_836, 610, 9_724)
    assert len(bundle.item_text) == 9_742  # 18 movies have text but no rating: cold items
    assert bundle.user_text is None
    toy_story = bundle.item_text[1]
    assert toy_story.startswith("Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy")
    assert "Tags: " in toy_story
    assert toy_story == toy_story.split("Tags: ")[0] + "Tags: " + toy_story.split("Tags: ")[1].lower()


def test_gowalla_official_split() -> None:
    bundle = load_dataset("gowalla", data_root=_shared("lightgcn-gowalla").parent)
    _check_bundle(bundle, 810_128, 29_858, 40_981)
    assert bundle.test is not None
    assert len(bundle.test) == 217_242
    assert bundle.test["user"].nunique() == 29_858
    assert len(bundle.item_text) == 40_981
    overlap = bundle.interactions.merge(bundle.test, on=["user", "item"])
    assert overlap.empty


def test_lightgcn_folder_tolerates_blank_lines_and_extra_spaces(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 1 2\n\n1  0 \r\n2 2\n")
    (tmp_path / "test.txt").write_text("0 3\n1\n")
    bundle = load_lightgcn(tmp_path)
    assert bundle.interactions.to_numpy().tolist() == [[0, 1], [0, 2], [1, 0], [2, 2]]
    assert bundle.test is not None
    assert bundle.test.to_numpy().tolist() == [[0, 3]]
    assert bundle.item_text.index.tolist() == [0, 1, 2, 3]


def test_lightgcn_rejects_non_integer_ids(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 1 2\n\n1 4 x\n")
    (tmp_path / "test.txt").write_text("0 3\n")
    with pytest.raises(ValueError, match=r"train\.txt: LightGCN lines must hold .*integer ids only; line 3 is '1 4 x'"):
        load_lightgcn(tmp_path)


def test_amazon_scientific() -> None:
    bundle = load_dataset("amazon-scientific", data_root=_shared("amazon-scientific-unisrec").parent)
    interactions = _check_bundle(bundle, 19_712, 2_928, 1_585)
    assert len(interactions) < 19_712  # repeat purchases are merged by the data layer
    first_user = bundle.interactions[bundle.interactions["user"] == 0]
    assert first_user["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert first_user["item"].tolist() == [0, 1, 2, 3, 4]
    assert bundle.item_titles.str.len().lt(bundle.item_text.str.len()).all()


def test_missing_data_root_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="HYBRID_DATA_ROOT"):
        load_dataset("ml-100k")
    with pytest.raises(FileNotFoundError, match=r"ml-100k.*--data-root"):
        load_dataset("ml-100k", data_root=tmp_path)


def test_data_root_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(_shared("ml-100k").parent))
    assert len(load_dataset("ML_100K").interactions) == 100_000


def test_unknown_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="name: unknown data set 'movielens'"):
        load_dataset("movielens")
