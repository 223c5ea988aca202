"""Loaders give the documented counts, and their frames pass the data layer's validation."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import DATA_ROOT

from hybrid.data.datasets import (
    DATA_ROOT_ENV,
    DataBundle,
    load_dataset,
    load_lastfm,
    load_lightgcn,
    load_ml1m,
)
from hybrid.data.interactions import Interactions


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
    frame = bundle.interactions
    assert (len(frame), len(bundle.item_text), len(bundle.user_text)) == (151_107, 3_233, 3_491)  # the catalogue
    assert frame["item"].isin(bundle.item_text.index).all() and frame["user"].isin(bundle.user_text.index).all()
    interactions = Interactions.from_frame(frame)
    assert interactions.has_time
    assert pd.api.types.is_integer_dtype(bundle.interactions["user"])
    assert "85123A" in bundle.item_text.index
    assert bundle.item_text["85123A"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert bundle.user_text is not None
    assert bundle.user_text.str.match(r"^A customer from .+\.$").all()
    first = pd.to_datetime(bundle.interactions["timestamp"].min(), unit="s")
    assert first >= pd.Timestamp("2011-06-01")
    # the 5-core holds in the training period only; after the split every purchase is kept
    config = yaml.safe_load((Path(__file__).parents[1] / "configs" / "default.yaml").read_text())
    cut = int(pd.Timestamp(config["split"]["at"], tz="UTC").timestamp())
    before = frame[frame["timestamp"] < cut]
    assert before.groupby("user").size().min() >= 5 and before.groupby("item").size().min() >= 5
    after = frame[frame["timestamp"] >= cut]
    assert after.groupby("item").size().min() == 1  # new products that sold once stay
    assert (~bundle.item_text.index.isin(before["item"])).sum() > 300  # new items of the catalogue


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
    assert toy_story == "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy"
    # tags are interactions with a time, not item text
    assert bundle.written is not None and len(bundle.written) == 3_683
    assert list(bundle.written.columns) == ["user", "item", "text", "timestamp"]
    assert (bundle.written["text"] == bundle.written["text"].str.lower()).all()
    assert not bundle.independent_catalogue


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
    assert "timestamp" not in bundle.interactions.columns  # an order, not a time
    assert first_user["order"].tolist() == [0, 1, 2, 3, 4]
    assert bundle.independent_catalogue
    assert first_user["item"].tolist() == [0, 1, 2, 3, 4]
    assert bundle.item_titles.str.len().lt(bundle.item_text.str.len()).all()


def test_ml1m_pools_the_colakg_split() -> None:
    bundle = load_dataset("ml-1m", data_root=_shared("ml-1m").parent)
    interactions = _check_bundle(bundle, 998_539, 6_040, 3_260)
    assert not interactions.has_time
    assert bundle.test is None  # cold-item / leave-last splits draw from all 998,539 pairs
    assert list(bundle.interactions.columns) == ["user", "item"]
    # MovieLens ids, in ratings.dat order (PROVENANCE.md: user 1 starts 1193, 661, 914)
    assert bundle.interactions["item"].iloc[:3].tolist() == [1193, 661, 914]
    assert bundle.interactions["user"].iloc[0] == 1
    assert len(bundle.item_text) == 3_260
    assert bundle.item_text[1] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert bundle.item_titles[1] == "Toy Story (1995)"
    assert bundle.item_text.str.contains(". Genres: ", regex=False).all()
    assert bundle.item_titles.str.contains("é").any()  # movies.dat read as latin-1
    assert bundle.user_text is not None
    assert len(bundle.user_text) == 6_040
    assert bundle.user_text[1] == "A female under 18, a K-12 student."
    assert bundle.user_text[2] == "A male aged 56 or over, self-employed."
    assert bundle.user_text.str.match(r"^A (fe)?male (under 18|aged \d\d(-\d\d| or over))(, [^.]+)?\.$").all()


def test_ml1m_predefined_keeps_the_colakg_test_set() -> None:
    bundle = load_dataset("ml-1m-predefined", data_root=_shared("ml-1m").parent)
    _check_bundle(bundle, 801_218, 6_040, 3_260)
    assert bundle.test is not None
    assert len(bundle.test) == 197_321
    assert bundle.test["user"].nunique() == 6_040
    assert bundle.test["item"].nunique() == 3_241
    assert bundle.interactions.merge(bundle.test, on=["user", "item"]).empty


def _tiny_ml1m(root: Path) -> Path:
    """A two-user, three-movie ML-1M folder in the shared layout."""
    split = root / "colakg_implicit_split"
    split.mkdir(parents=True)
    (split / "train.txt").write_text("0 0 1\n1 2\n")
    (split / "test.txt").write_text("0 2\n1 0\n")
    (split / "item_map.txt").write_text("10 0\n20 1\n30 2\n")
    (split / "user_map.txt").write_text("5 0\n7 1\n")
    (root / "movies.dat").write_bytes(
        "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n30::Odd (1999)::\n40::Unused (1990)::Drama\n"
        .encode("latin-1")
    )
    (root / "users.dat").write_text("5::F::25::12::55117\n7::M::1::0::02139\n")
    return root


def test_ml1m_tiny_folder(tmp_path: Path) -> None:
    bundle = load_ml1m(_tiny_ml1m(tmp_path / "ml-1m"))
    assert bundle.interactions.to_numpy().tolist() == [[5, 10], [5, 20], [7, 30], [5, 30], [7, 10]]
    assert bundle.item_text.to_dict() == {10: "Amélie (2001). Genres: Comedy, Romance", 20: "Heat (1995). Genres: Action", 30: "Odd (1999)"}
    assert bundle.user_text is not None
    assert bundle.user_text.to_dict() == {5: "A female aged 25-34, a programmer.", 7: "A male under 18."}
    predefined = load_ml1m(tmp_path / "ml-1m", predefined=True)
    assert predefined.test is not None
    assert predefined.test.to_numpy().tolist() == [[5, 30], [7, 10]]


@pytest.mark.parametrize(
    ("file", "text", "match"),
    [
        ("movies.dat", "10::Amélie (2001)::Comedy\n20::Heat (1995)\n", r"movies\.dat: line 2 has 2 '::'-separated fields"),
        ("movies.dat", "10::A (2001)::Comedy\n20::B (1995)::Action\n", r"item_map\.txt: 1 MovieIDs are not in .*movies\.dat, e\.g\. 30"),
        ("users.dat", "5::F::25::12::55117\n7::M::1::21::02139\n", r"users\.dat: column 'Occupation' holds unknown code 21 on line 2"),
        ("users.dat", "5::F::25::12::55117\n7::X::1::0::02139\n", r"users\.dat: column 'Gender' holds unknown code 'X' on line 2"),
        ("colakg_implicit_split/train.txt", "0 0 1\n1 3\n", r"train\.txt: id 3 has no line in .*item_map\.txt"),
        ("colakg_implicit_split/item_map.txt", "10 0\n20 1\n30\n", r"item_map\.txt: line 3 is '30'"),
    ],
)
def test_ml1m_errors_name_the_file_and_line(tmp_path: Path, file: str, text: str, match: str) -> None:
    folder = _tiny_ml1m(tmp_path / "ml-1m")
    (folder / file).write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=match):
        load_ml1m(folder)


def test_lastfm() -> None:
    bundle = load_dataset("lastfm", data_root=_shared("hetrec-lastfm-2k").parent)
    interactions = _check_bundle(bundle, 92_834, 1_892, 17_632)
    assert not interactions.has_time
    assert bundle.user_text is None and bundle.test is None
    assert int(bundle.interactions["weight"].sum()) == 69_183_975  # listening counts, kept as weight
    assert bundle.interactions["weight"].min() == 1
    assert interactions.weights.max() == 352_698
    assert len(bundle.item_text) == 17_632
    assert bundle.item_text.ne("").all()  # every artist in user_artists.dat has a name
    assert bundle.item_text[89] == "Lady Gaga"
    assert bundle.item_titles.equals(bundle.item_text.rename("title"))
    assert bundle.item_text.str.contains("ö").any()  # artists.dat read as UTF-8


def test_lastfm_tiny_folder_unnamed_artist_and_errors(tmp_path: Path) -> None:
    (tmp_path / "user_artists.dat").write_bytes(b"userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t7\t5\r\n3\t51\t1\r\n")
    (tmp_path / "artists.dat").write_text('id\tname\turl\tpictureURL\n51\t"Weird" Al\tu\tp\n8\tNA\tu\tp\n')
    bundle = load_lastfm(tmp_path)
    assert bundle.interactions.to_numpy().tolist() == [[2, 51, 13883], [2, 7, 5], [3, 51, 1]]
    assert bundle.item_text.to_dict() == {7: "", 8: "NA", 51: '"Weird" Al'}
    (tmp_path / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t7\tmany\n")
    with pytest.raises(ValueError, match=r"user_artists\.dat: column 'weight' holds 'many' on line 3"):
        load_lastfm(tmp_path)
    (tmp_path / "user_artists.dat").write_text("user\tartist\tweight\n2\t51\t1\n")
    with pytest.raises(ValueError, match=r"user_artists\.dat: header lacks column\(s\) \['userID', 'artistID'\]"):
        load_lastfm(tmp_path)


def _write_lightgcn(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("0 1 2\n1 0\n")
    (folder / "test.txt").write_text("0 3\n1 2\n")


def test_lightgcn_format_reads_a_folder_and_a_zip_with_any_inner_folder(tmp_path: Path) -> None:
    _write_lightgcn(tmp_path / "plain")
    from_folder = load_dataset("lightgcn_format", path=tmp_path / "plain")
    assert from_folder.name == "lightgcn_format"
    assert from_folder.interactions.to_numpy().tolist() == [[0, 1], [0, 2], [1, 0]]
    assert from_folder.test is not None
    assert from_folder.test.to_numpy().tolist() == [[0, 3], [1, 2]]
    assert from_folder.item_text.index.tolist() == [0, 1, 2, 3]
    assert from_folder.item_text.eq("").all() and from_folder.user_text is None

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("My Export (v2)/", "")
        z.writestr("My Export (v2)/train.txt", (tmp_path / "plain" / "train.txt").read_text())
        z.writestr("My Export (v2)/test.txt", (tmp_path / "plain" / "test.txt").read_text())
        z.writestr("__MACOSX/My Export (v2)/train.txt", "not ids")
    from_zip = load_dataset("LightGCN-Format", path=archive)
    pd.testing.assert_frame_equal(from_zip.interactions, from_folder.interactions)
    assert from_zip.test is not None
    pd.testing.assert_frame_equal(from_zip.test, from_folder.test)
    # a folder holding one unzipped export folder is read too
    _write_lightgcn(tmp_path / "outer" / "inner")
    assert len(load_dataset("lightgcn_format", path=tmp_path / "outer").interactions) == 3


def test_lightgcn_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.path: data set 'lightgcn_format' has no usual folder"):
        load_dataset("lightgcn_format", data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing\.zip does not exist; data\.path must name"):
        load_dataset("lightgcn_format", path=tmp_path / "missing.zip")
    archive = tmp_path / "no_train.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data/test.txt", "0 1\n")
    with pytest.raises(FileNotFoundError, match=r"no_train\.zip holds no train\.txt in any folder; it holds \['data/test\.txt'\]"):
        load_dataset("lightgcn_format", path=archive)
    archive = tmp_path / "no_test.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data/train.txt", "0 1\n")
    with pytest.raises(FileNotFoundError, match=r"holds data/train\.txt but no data/test\.txt next to it"):
        load_dataset("lightgcn_format", path=archive)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.txt").write_text("0 1\n")
    with pytest.raises(FileNotFoundError, match=r"half has train\.txt but no test\.txt"):
        load_dataset("lightgcn_format", path=tmp_path / "half")


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


def test_amazon_magazine_catalogue_holds_every_magazine_of_the_metadata() -> None:
    bundle = load_dataset("amazon-magazine", data_root=_shared("amazon2018-magazine-subscriptions").parent)
    frame = bundle.interactions
    assert (len(frame), frame["user"].nunique(), frame["item"].nunique()) == (2_375, 348, 157)
    assert len(bundle.item_text) == 2_326  # 2,320 metadata asins and 6 reviewed ones without metadata
    assert frame["item"].isin(bundle.item_text.index).all()
    assert not bundle.item_text.str.contains("<span").any()  # the broken HTML titles are not the text
    assert (bundle.item_text != "").sum() > 2_200
    assert Interactions.from_frame(frame).has_time
