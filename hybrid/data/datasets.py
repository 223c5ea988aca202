"""Data set loaders: the bundled Online Retail set and the real sets under a data root.

Every loader returns a :class:`DataBundle` whose ``interactions`` frame goes straight into
:meth:`hybrid.data.interactions.Interactions.from_frame` and whose text series feed the encoders and the
LLM prompts. The real data sets (MovieLens, Gowalla, Amazon, Last.fm) may not be
redistributed, so they are read in place from a data root (``--data-root`` or
``HYBRID_DATA_ROOT``) or from ``data.path``; only Online Retail (CC BY 4.0) ships with the package.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from hybrid.config import DataConfig
from hybrid.data.interactions import ITEM, USER, Columns, Interactions, coerce_ids_like, item_texts

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "HYBRID_DATA_ROOT"


@dataclass
class DataBundle:
    """One data set, ready for :class:`~hybrid.data.interactions.Interactions` and the text encoders.

    Attributes:
        name: the registry name.
        interactions: columns ``user``, ``item`` and, where the source has them, ``timestamp``
            (int Unix seconds, or order positions where noted) and ``weight``.
        item_text: index = item id (dtype of ``interactions["item"]``), value = text to encode.
        item_titles: index = item id, a short human title for prompts and display.
        user_text: index = user id, a side-information sentence, or None when there is none.
        test: a test set shipped with the data (``user``, ``item``), or None.
    """

    name: str
    interactions: pd.DataFrame
    item_text: pd.Series
    item_titles: pd.Series
    user_text: pd.Series | None = None
    test: pd.DataFrame | None = None


# ---------------------------------------------------------------------------- Online Retail
def load_online_retail(path: str | Path | None = None) -> DataBundle:
    """UCI Online Retail (Chen 2015, CC BY 4.0), purchases from 2011-06 on, 5-core before 2011-11-01.

    Implicit feedback: one row per (customer, product), weight 1, timestamp = first purchase
    (UK wall clock encoded as UTC). The core holds in the demo's training period only; every
    later purchase is kept, and the catalogue is every product and customer of the window, so
    new products that sold once or never after the split are in it (see ATTRIBUTION.md for
    the counts). Users are int ids, items string stock codes such as "85123A". ``scripts/build_online_retail.py`` derives the
    files; ``path`` reads a folder it wrote instead of the bundled copy.
    """
    folder = resources.files("hybrid.data") / "_data" / "online_retail" if path is None else Path(path)
    with (folder / "interactions.csv.gz").open("rb") as f:
        pairs = pd.read_csv(f, compression="gzip", dtype={"user_id": "int64", "item_id": str})
    with (folder / "items.csv.gz").open("rb") as f:
        items = pd.read_csv(f, compression="gzip", dtype={"item_id": str}, keep_default_na=False)
    with (folder / "users.csv.gz").open("rb") as f:
        users = pd.read_csv(f, compression="gzip", dtype={"user_id": "int64"}, keep_default_na=False)
    interactions = pairs[["user_id", "item_id", "timestamp"]].rename(
        columns={"user_id": "user", "item_id": "item"}
    )
    titles = pd.Series(items["title"].to_numpy(), index=pd.Index(items["item_id"], name="item"))
    country = users["country"].replace("Unspecified", "an unspecified country")
    user_text = pd.Series(
        ("A customer from " + country + ".").to_numpy(), index=pd.Index(users["user_id"], name="user")
    )
    return DataBundle("online_retail", interactions, titles.rename("text"), titles.rename("title"), user_text)


# ---------------------------------------------------------------------------- MovieLens
# Occupations that do not read as "A 24-year-old male <occupation>."
_OCCUPATION_PHRASES = {
    "entertainment": ", working in entertainment",
    "healthcare": ", working in healthcare",
    "marketing": ", working in marketing",
    "retired": ", retired",
    "none": ", no occupation",
    "other": "",
}


def _genre_text(title: pd.Series, genres: pd.Series) -> pd.Series:
    """Text "Title. Genres: A, B", or just the title when there are no genres."""
    suffix = genres.map(lambda g: f". Genres: {', '.join(g)}" if g else "")
    return title + suffix


def load_ml100k(path: str | Path) -> DataBundle:
    """MovieLens 100K: 100,000 ratings (kept as ``weight``), 943 users, 1,682 movies.

    Item text: "Toy Story (1995). Genres: Animation, Children's, Comedy". User text from
    u.user: "A 24-year-old male technician." (zip codes are left out).
    """
    folder = _existing_dir(path, "ml-100k")
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=["user", "item", "weight", "timestamp"],
        dtype="int64",
    )
    genre_names = pd.read_csv(folder / "u.genre", sep="|", header=None, names=["genre", "index"])
    movies = pd.read_csv(
        folder / "u.item", sep="|", header=None, encoding="latin-1", keep_default_na=False,
        names=["item", "title", "release", "video_release", "url", *genre_names["genre"]],
    )
    named = np.array([g for g in genre_names["genre"] if g != "unknown"], dtype=object)
    flags = movies[named].to_numpy(bool)
    genres = pd.Series([list(named[row]) for row in flags])
    index = pd.Index(movies["item"].astype("int64"), name="item")
    titles = pd.Series(movies["title"].to_numpy(), index=index, name="title")
    text = pd.Series(_genre_text(movies["title"], genres).to_numpy(), index=index, name="text")

    people = pd.read_csv(
        folder / "u.user", sep="|", header=None, names=["user", "age", "gender", "occupation", "zip"],
        dtype={"user": "int64", "age": "int64", "gender": str, "occupation": str, "zip": str},
    )
    gender = people["gender"].map({"M": "male", "F": "female"}).fillna("person")
    job = people["occupation"].map(lambda o: _OCCUPATION_PHRASES.get(o, f" {o}"))
    sentences = "A " + people["age"].astype(str) + "-year-old " + gender + job + "."
    user_text = pd.Series(sentences.to_numpy(), index=pd.Index(people["user"], name="user"), name="text")
    return DataBundle("ml-100k", ratings[["user", "item", "timestamp", "weight"]], text, titles, user_text)


def load_ml_latest_small(path: str | Path) -> DataBundle:
    """MovieLens latest-small: 100,836 ratings (``weight``), 610 users, 9,742 movies.

    Item text: "Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun", where the
    tags are the users' free-text tags, lower-cased and de-duplicated, most used first.
    Movies nobody rated keep their text, so they are cold items.
    """
    folder = _existing_dir(path, "ml-latest-small")
    ratings = pd.read_csv(folder / "ratings.csv").rename(
        columns={"userId": "user", "movieId": "item", "rating": "weight"}
    )
    ratings = ratings.astype({"user": "int64", "item": "int64", "timestamp": "int64"})
    movies = pd.read_csv(folder / "movies.csv", keep_default_na=False, dtype={"movieId": "int64"})
    genres = movies["genres"].map(lambda g: [] if g == "(no genres listed)" else g.split("|"))
    index = pd.Index(movies["movieId"], name="item")
    titles = pd.Series(movies["title"].to_numpy(), index=index, name="title")
    text = pd.Series(_genre_text(movies["title"], genres).to_numpy(), index=index, name="text")

    tags = pd.read_csv(folder / "tags.csv", keep_default_na=False, dtype={"movieId": "int64"})
    tags["tag"] = tags["tag"].str.strip().str.lower()
    tags = tags[tags["tag"] != ""]
    counts = tags.groupby(["movieId", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["movieId", "n", "tag"], ascending=[True, False, True])
    tag_text = counts.groupby("movieId")["tag"].agg(", ".join)
    has_tags = text.index.isin(tag_text.index)
    text[has_tags] = text[has_tags] + ". Tags: " + tag_text.reindex(text.index[has_tags]).to_numpy()
    return DataBundle("ml-latest-small", ratings[["user", "item", "timestamp", "weight"]], text, titles)


# ---------------------------------------------------------------------------- LightGCN format
def _parse_adjacency_lists(data: bytes, role: str) -> pd.DataFrame:
    """Lines "user item item ..." -> int64 (user, item) pairs, with no Python loop over entries."""
    chars = np.frombuffer(data, np.uint8)
    solid = chars > ord(" ")  # any ASCII whitespace or control character separates tokens
    token_starts = np.flatnonzero(solid & ~np.concatenate(([False], solid[:-1])))
    line_of_token = np.searchsorted(np.flatnonzero(chars == ord("\n")), token_starts)
    lengths = np.bincount(line_of_token)
    lengths = lengths[lengths > 0]  # blank lines
    try:
        tokens = np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ")
    except (UnicodeDecodeError, ValueError):
        tokens = np.empty(0, np.int64)
    if tokens.size != token_starts.size:
        number, line = _first_bad_line(data)
        raise ValueError(
            f"{role}: LightGCN lines must hold whitespace-separated integer ids only; line {number} is {line!r}"
        )
    starts = np.cumsum(lengths) - lengths
    users = np.repeat(tokens[starts], lengths - 1)
    items = np.delete(tokens, starts)
    return pd.DataFrame({"user": users, "item": items})


def _first_bad_line(data: bytes) -> tuple[int, str]:
    """(1-based number, text) of the first line holding something other than integer ids; only
    run once parsing has failed, so a line-by-line scan costs nothing on good files."""
    for number, line in enumerate(data.decode("ascii", errors="replace").splitlines(), start=1):
        if not all(token.lstrip("+-").isdigit() for token in line.split()):
            return number, line[:80]
    return 0, ""


def _read_lightgcn_files(path: Path) -> tuple[bytes, bytes]:
    """train.txt and test.txt from a folder, a zip, or a folder holding one zip or one subfolder
    with them; inside a zip the folder may have any name (exports rarely agree on one)."""
    if path.is_dir() and (path / "train.txt").is_file():
        if not (path / "test.txt").is_file():
            raise FileNotFoundError(f"{path} has train.txt but no test.txt next to it")
        return (path / "train.txt").read_bytes(), (path / "test.txt").read_bytes()
    if path.is_dir():
        found = sorted(path.glob("*.zip")) + sorted(p.parent for p in path.glob("*/train.txt"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"{path} has no train.txt and {len(found)} zip files or subfolders holding one "
                f"({[p.name for p in found]}); expected train.txt/test.txt, one zip or one such subfolder"
            )
        return _read_lightgcn_files(found[0])
    if not zipfile.is_zipfile(path):
        raise FileNotFoundError(f"{path} is neither a folder with train.txt/test.txt nor a zip file")
    with zipfile.ZipFile(path) as archive:
        members = [
            n for n in archive.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")
        ]
        trains = [n for n in members if PurePosixPath(n).name == "train.txt"]
        if not trains:
            raise FileNotFoundError(f"{path} holds no train.txt in any folder; it holds {sorted(members)[:20]}")
        if len(trains) > 1:
            raise ValueError(f"{path} holds {len(trains)} train.txt files {sorted(trains)}; expected exactly one")
        test_name = str(PurePosixPath(trains[0]).with_name("test.txt"))
        if test_name not in members:
            raise FileNotFoundError(f"{path} holds {trains[0]} but no {test_name} next to it")
        return archive.read(trains[0]), archive.read(test_name)


def load_lightgcn(path: str | Path, name: str = "lightgcn") -> DataBundle:
    """A data set in the NGCF/LightGCN split format, e.g. Gowalla (29,858 users, 40,981 items).

    ``path`` is a folder with ``train.txt``/``test.txt`` (lines "user item item ..."), a zip
    holding them in any inner folder (read in place), or a folder with one such zip or
    subfolder. ``interactions`` is the train split and ``test`` the official test split (so
    ``split: {kind: predefined}`` reproduces it); there is no time and no text, so the text
    series are empty strings over every item id seen in either split.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"LightGCN-format data {path} does not exist; data.path must name a folder with "
            "train.txt/test.txt or a zip holding them"
        )
    train_bytes, test_bytes = _read_lightgcn_files(path)
    train = _parse_adjacency_lists(train_bytes, "train.txt")
    test = _parse_adjacency_lists(test_bytes, "test.txt")
    seen = np.concatenate([train["item"].to_numpy(), test["item"].to_numpy()])
    items = pd.Index(np.sort(pd.unique(seen)), name="item")
    empty = pd.Series("", index=items, dtype=str)
    return DataBundle(name, train, empty.rename("text"), empty.rename("title"), test=test)


# ---------------------------------------------------------------------------- MovieLens 1M
# users.dat codes (ML-1M README). Ages are ranges, so the sentence says "aged 25-34", not "25-year-old".
_ML1M_GENDERS = {"M": "male", "F": "female"}
_ML1M_AGES = {
    1: "under 18", 18: "aged 18-24", 25: "aged 25-34", 35: "aged 35-44", 45: "aged 45-49",
    50: "aged 50-55", 56: "aged 56 or over",
}
_ML1M_OCCUPATIONS = {
    0: "",  # "other" or not specified
    1: ", an academic or educator",
    2: ", an artist",
    3: ", in clerical or admin work",
    4: ", a college or graduate student",
    5: ", in customer service",
    6: ", a doctor or health care worker",
    7: ", an executive or manager",
    8: ", a farmer",
    9: ", a homemaker",
    10: ", a K-12 student",
    11: ", a lawyer",
    12: ", a programmer",
    13: ", retired",
    14: ", in sales or marketing",
    15: ", a scientist",
    16: ", self-employed",
    17: ", a technician or engineer",
    18: ", a tradesman or craftsman",
    19: ", unemployed",
    20: ", a writer",
}


def _read_double_colon(file: Path, columns: list[str], encoding: str) -> pd.DataFrame:
    """Rows of a '::'-separated ML-1M file as strings, plus the 1-based ``line`` for messages.

    Split on "\\n" only: ``str.splitlines`` would also break latin-1 text at bytes such as 0x85.
    """
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found; the ml-1m loader needs it")
    rows = []
    for number, line in enumerate(file.read_text(encoding=encoding).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != len(columns):
            raise ValueError(
                f"{file}: line {number} has {len(fields)} '::'-separated fields, expected "
                f"{len(columns)} ({'::'.join(columns)}): {line[:80]!r}"
            )
        rows.append([*fields, number])
    return pd.DataFrame(rows, columns=[*columns, "line"])


def _int_column(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    """``frame[column]`` as int64, or a ValueError naming the file, column and line."""
    numeric = pd.to_numeric(frame[column], errors="coerce")
    bad = numeric.isna() | (numeric != numeric.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{file}: column {column!r} holds {frame[column].iloc[row]!r} on line {frame['line'].iloc[row]}; "
            "expected an integer"
        )
    return numeric.astype("int64")


def _coded(frame: pd.DataFrame, column: str, codes: dict, file: Path) -> pd.Series:
    """Map a code column through ``codes``; an unknown code is a ValueError naming its line."""
    mapped = frame[column].map(codes)
    if mapped.isna().any():
        row = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        code = frame[column].iloc[row]
        code = code.item() if isinstance(code, np.generic) else code  # 21, not np.int64(21)
        raise ValueError(
            f"{file}: column {column!r} holds unknown code {code!r} on line "
            f"{frame['line'].iloc[row]}; known codes are {sorted(codes)}"
        )
    return mapped


def _read_id_map(file: Path, original: str) -> pd.Series:
    """A CoLaKG map file, lines "original_id remapped_id" -> Series remapped -> original."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found; it maps the split's ids back to MovieLens {original}s")
    lines = [(n, line.split()) for n, line in enumerate(file.read_text().split("\n"), start=1) if line.strip()]
    for number, fields in lines:
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise ValueError(f"{file}: line {number} is {' '.join(fields)!r}; expected '{original} remapped_id'")
    pairs = np.array([fields for _, fields in lines], dtype=np.int64).reshape(-1, 2)
    for column, label in ((0, original), (1, "remapped id")):
        values, counts = np.unique(pairs[:, column], return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{file}: {label} {int(values[counts > 1][0])} appears on more than one line")
    return pd.Series(pairs[:, 0], index=pd.Index(pairs[:, 1]))


def _unmap(codes: pd.Series, id_map: pd.Series, role: str, map_file: Path) -> np.ndarray:
    """Remapped ids -> original ids; an id the map lacks is a ValueError naming both files."""
    positions = id_map.index.get_indexer(codes.to_numpy())
    if (positions < 0).any():
        missing = int(codes.to_numpy()[positions < 0][0])
        raise ValueError(f"{role}: id {missing} has no line in {map_file}")
    return id_map.to_numpy()[positions]


def load_ml1m(path: str | Path, predefined: bool = False, name: str = "ml-1m") -> DataBundle:
    """MovieLens 1M through the CoLaKG implicit split: 998,539 pairs, 6,040 users, 3,260 movies.

    ratings.dat is absent from the shared copy, so the interactions are CoLaKG's
    ``colakg_implicit_split`` (LightGCN train.txt/test.txt, implicit, no ratings and no time),
    mapped back to MovieLens ids through item_map.txt/user_map.txt so that they join
    movies.dat and users.dat. By default train and test together are ``interactions`` and
    ``test`` is None, so cold-item and leave-last splits draw from all of it; with
    ``predefined`` (registry name ``ml-1m-predefined``) ``interactions`` is train.txt and
    ``test`` test.txt, as :func:`load_lightgcn` does, for ``split: {kind: predefined}``.

    Item text: "Toy Story (1995). Genres: Animation, Children's, Comedy", over the split's
    3,260 movies only: CoLaKG dropped the other 623 of movies.dat, so they are not cold items
    of this data set but absent ones. User text from users.dat:
    "A female under 18, a K-12 student." (zip codes are left out, as for ml-100k).
    """
    folder = _existing_dir(path, "ml-1m")
    split_dir = folder / "colakg_implicit_split"
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"{split_dir} is not a folder; the ml-1m loader reads its interactions from the CoLaKG "
            "split there (train.txt, test.txt, item_map.txt, user_map.txt)"
        )
    train_bytes, test_bytes = _read_lightgcn_files(split_dir)
    item_map = _read_id_map(split_dir / "item_map.txt", "MovieID")
    user_map = _read_id_map(split_dir / "user_map.txt", "UserID")
    parts: dict[str, pd.DataFrame] = {}
    for part, data in (("train.txt", train_bytes), ("test.txt", test_bytes)):
        role = str(split_dir / part)
        pairs = _parse_adjacency_lists(data, role)
        parts[part] = pd.DataFrame({
            "user": _unmap(pairs["user"], user_map, role, split_dir / "user_map.txt"),
            "item": _unmap(pairs["item"], item_map, role, split_dir / "item_map.txt"),
        })

    movies_file = folder / "movies.dat"
    movies = _read_double_colon(movies_file, ["MovieID", "Title", "Genres"], "latin-1")
    index = pd.Index(_int_column(movies, "MovieID", movies_file).to_numpy(), name="item")
    if index.has_duplicates:
        raise ValueError(f"{movies_file}: MovieID {index[index.duplicated()][0]} appears on more than one line")
    unknown = np.setdiff1d(item_map.to_numpy(), index.to_numpy())
    if unknown.size:
        raise ValueError(
            f"{split_dir / 'item_map.txt'}: {unknown.size} MovieIDs are not in {movies_file}, e.g. {unknown[0]}"
        )
    genres = movies["Genres"].map(lambda g: [x for x in g.split("|") if x])
    titles = pd.Series(movies["Title"].str.strip().to_numpy(), index=index, name="title")
    text = pd.Series(_genre_text(titles.reset_index(drop=True), genres).to_numpy(), index=index, name="text")
    in_split = pd.Index(np.sort(item_map.to_numpy()), name="item")
    titles, text = titles.reindex(in_split), text.reindex(in_split)

    users_file = folder / "users.dat"
    people = _read_double_colon(users_file, ["UserID", "Gender", "Age", "Occupation", "Zip-code"], "latin-1")
    user_index = pd.Index(_int_column(people, "UserID", users_file).to_numpy(), name="user")
    missing = np.setdiff1d(user_map.to_numpy(), user_index.to_numpy())
    if missing.size:
        raise ValueError(
            f"{split_dir / 'user_map.txt'}: {missing.size} UserIDs are not in {users_file}, e.g. {missing[0]}"
        )
    gender = _coded(people, "Gender", _ML1M_GENDERS, users_file)
    people["Age"] = _int_column(people, "Age", users_file)
    people["Occupation"] = _int_column(people, "Occupation", users_file)
    age = _coded(people, "Age", _ML1M_AGES, users_file)
    job = _coded(people, "Occupation", _ML1M_OCCUPATIONS, users_file)
    sentences = "A " + gender + " " + age + job + "."
    user_text = pd.Series(sentences.to_numpy(), index=user_index, name="text")

    train, test = parts["train.txt"], parts["test.txt"]
    if predefined:
        return DataBundle(name, train, text, titles, user_text, test=test)
    interactions = pd.concat([train, test], ignore_index=True)
    return DataBundle(name, interactions, text, titles, user_text)


# ---------------------------------------------------------------------------- Amazon (UniSRec)
_AMAZON_TITLE = re.compile(r"^(.*?)\. (?:Industrial & Scientific|\. )")


def load_amazon_scientific(path: str | Path) -> DataBundle:
    """Amazon "Industrial and Scientific" in UniSRec format: 2,928 users, 1,585 items.

    The ``.inter`` files hold (user, history prefix, next item) rows; each user's full
    sequence is the longest history + target across train/valid/test. The ``timestamp``
    column is the position in that sequence (0, 1, 2, ...): the order is chronological but
    the source has no times, so splits by "time" here are splits by order. Ids are the
    files' integer indices; item text (title. categories. brand.) comes from
    ``Scientific.text`` via ``Scientific.item2index``.
    """
    folder = _existing_dir(path, "amazon-scientific-unisrec")
    sequences: dict[int, list[int]] = {}
    for part in ("train", "valid", "test"):
        rows = pd.read_csv(folder / f"Scientific.{part}.inter", sep="\t", dtype=str)
        rows.columns = [c.split(":")[0] for c in rows.columns]
        for user, history, target in rows[["user_id", "item_id_list", "item_id"]].itertuples(index=False):
            sequence = [*map(int, history.split()), int(target)]
            if len(sequence) > len(sequences.get(int(user), ())):
                sequences[int(user)] = sequence
    users = np.fromiter(sequences, np.int64, count=len(sequences))
    lengths = np.fromiter(map(len, sequences.values()), np.int64, count=len(sequences))
    positions = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    interactions = pd.DataFrame(
        {
            "user": np.repeat(users, lengths),
            "item": np.concatenate([np.asarray(s, np.int64) for s in sequences.values()]),
            "timestamp": positions,
        }
    )

    index = pd.read_csv(
        folder / "Scientific.item2index", sep="\t", header=None, names=["asin", "item"],
        dtype={"asin": str, "item": "int64"},
    )
    # Raw text rather than CSV: a '"' in a product title must not open a quoted field.
    texts = pd.read_csv(
        folder / "Scientific.text", sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE
    )
    texts.columns = ["asin", "text"]
    texts = texts.merge(index, on="asin", how="inner", validate="one_to_one").sort_values("item")
    if len(texts) != len(index):
        raise ValueError(f"{folder}: {len(index) - len(texts)} items of Scientific.item2index have no text")
    text = pd.Series(texts["text"].str.strip().to_numpy(), index=pd.Index(texts["item"], name="item"))
    titles = text.map(lambda t: m.group(1) if (m := _AMAZON_TITLE.match(t)) else t.rstrip(". "))
    return DataBundle("amazon-scientific", interactions, text.rename("text"), titles.rename("title"))


# ---------------------------------------------------------------------------- Last.fm (HetRec 2011)
def _read_tsv(file: Path, columns: list[str], encoding: str = "utf-8") -> pd.DataFrame:
    """A tab-separated HetRec file with a header, every field a string; checks the header names."""
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found; the lastfm loader needs it")
    # QUOTE_NONE: a '"' in an artist name must not open a quoted field; "NA" or "null" are names.
    frame = pd.read_csv(
        file, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding=encoding
    )
    frame.columns = [c.strip() for c in frame.columns]
    frame["line"] = np.arange(2, len(frame) + 2)  # 1-based, after the header (no blank lines in HetRec files)
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"{file}: header lacks column(s) {absent}; it has {list(frame.columns)}")
    return frame


def load_lastfm(path: str | Path) -> DataBundle:
    """HetRec 2011 Last.fm 2K: 92,834 (user, artist) play counts, 1,892 users, 17,632 artists.

    ``weight`` is the user's listening count for the artist (1 to 352,698, heavy-tailed); there
    is no time (the tag-assignment files that carry it are absent from the shared copy). Item
    text and titles are the artist names from artists.dat only, so the text is weak; an
    artist in user_artists.dat without a name there gets "". The friend graph is not used.
    """
    folder = _existing_dir(path, "hetrec-lastfm-2k")
    plays_file = folder / "user_artists.dat"
    plays = _read_tsv(plays_file, ["userID", "artistID", "weight"])
    interactions = pd.DataFrame({
        "user": _int_column(plays, "userID", plays_file).to_numpy(),
        "item": _int_column(plays, "artistID", plays_file).to_numpy(),
        "weight": _int_column(plays, "weight", plays_file).to_numpy(),
    })
    artists_file = folder / "artists.dat"
    artists = _read_tsv(artists_file, ["id", "name"])
    ids = pd.Index(_int_column(artists, "id", artists_file).to_numpy(), name="item")
    if ids.has_duplicates:
        raise ValueError(f"{artists_file}: artist id {ids[ids.duplicated()][0]} appears on more than one line")
    names = pd.Series(artists["name"].str.strip().to_numpy(), index=ids)
    items = ids.union(pd.Index(interactions["item"].unique(), name="item"))
    unnamed = int((~items.isin(ids)).sum())
    if unnamed:
        logger.info(
            "lastfm: %d artists in %s have no name in %s; their text is empty",
            unnamed, plays_file.name, artists_file.name,
        )
    names = names.reindex(items).fillna("").astype(str)
    return DataBundle("lastfm", interactions, names.rename("text"), names.rename("title"))


# ---------------------------------------------------------------------------- Amazon magazines
def load_amazon_magazine(path: str | Path) -> DataBundle:
    """Amazon 2018 "Magazine Subscriptions": 2,375 reviews by 348 users with times, and a catalogue
    of every magazine in the metadata file (:mod:`hybrid.data.magazine`)."""
    from hybrid.data.magazine import read_magazine

    interactions, text, titles = read_magazine(_existing_dir(path, "amazon2018-magazine-subscriptions"))
    return DataBundle("amazon-magazine", interactions, text, titles)


# ---------------------------------------------------------------------------- registry
# name -> (folder under the data root, loader); None marks the bundled set, or a set in
# _NEEDS_PATH that has no usual folder and is read from data.path only.
_REGISTRY: dict[str, tuple[str | None, Callable[..., DataBundle]]] = {
    "online_retail": (None, load_online_retail),
    "ml-100k": ("ml-100k", load_ml100k),
    "ml-latest-small": ("ml-latest-small", load_ml_latest_small),
    "ml-1m": ("ml-1m", load_ml1m),
    "ml-1m-predefined": ("ml-1m", partial(load_ml1m, predefined=True, name="ml-1m-predefined")),
    "gowalla": ("lightgcn-gowalla", partial(load_lightgcn, name="gowalla")),
    "amazon-scientific": ("amazon-scientific-unisrec", load_amazon_scientific),
    "lastfm": ("hetrec-lastfm-2k", load_lastfm),
    "amazon-magazine": ("amazon2018-magazine-subscriptions", load_amazon_magazine),
    "lightgcn_format": (None, partial(load_lightgcn, name="lightgcn_format")),
}
_NEEDS_PATH = frozenset({"lightgcn_format"})
DATASET_NAMES = tuple(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_dataset(name: str, data_root: str | Path | None = None, path: str | Path | None = None) -> DataBundle:
    """Load a data set by registry name (see ``DATASET_NAMES``).

    Args:
        name: "online_retail" (bundled), "ml-100k", "ml-latest-small", "ml-1m",
            "ml-1m-predefined", "gowalla", "amazon-scientific", "lastfm", "amazon-magazine" or
            "lightgcn_format";
            case, "-" and "_" do not matter.
        data_root: folder holding the real data sets (``<root>/ml-100k`` etc.); defaults to
            the ``HYBRID_DATA_ROOT`` environment variable. Not needed for the bundled set.
        path: the data set's own folder (or file), overriding ``data_root``; required for
            "lightgcn_format" (a folder with train.txt/test.txt, or a zip holding them).
    """
    matches = [key for key in _REGISTRY if _canonical(key) == _canonical(name)]
    if not matches:
        raise ValueError(f"name: unknown data set {name!r}; choose one of {list(DATASET_NAMES)}")
    folder, loader = _REGISTRY[matches[0]]
    if path is not None:
        return _logged(loader(Path(path).expanduser()))
    if matches[0] in _NEEDS_PATH:
        raise ValueError(
            f"data.path: data set {matches[0]!r} has no usual folder; set data.path (path=) to a folder "
            "with train.txt/test.txt or a zip holding them"
        )
    if folder is None:
        return _logged(loader(None))
    root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise FileNotFoundError(
            f"data set {matches[0]!r} is read from a folder {folder!r} under a data root, and none was "
            f"given: pass --data-root (data_root=) or set {DATA_ROOT_ENV}"
        )
    location = Path(root).expanduser() / folder
    if not location.exists():
        raise FileNotFoundError(
            f"data folder {location} not found for data set {matches[0]!r}: pass --data-root "
            f"(data_root=) pointing at the folder that holds {folder!r}, or set {DATA_ROOT_ENV}"
        )
    return _logged(loader(location))


def _logged(bundle: DataBundle) -> DataBundle:
    frame = bundle.interactions
    logger.info(
        "loaded %s: %d interactions, %d users, %d items (%d with text)%s",
        bundle.name, len(frame), frame["user"].nunique(), frame["item"].nunique(),
        int(bundle.item_text.ne("").sum()),
        "" if bundle.test is None else f", {len(bundle.test)} predefined test pairs",
    )
    return bundle


def _existing_dir(path: str | Path, expected: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected the {expected} data set folder")
    return folder


# ---------------------------------------------------------------------------- your own files
def _read_table(path: str | Path, role: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.{role}: file {path} does not exist")
    suffixes = "".join(path.suffixes).lower()
    return pd.read_parquet(path) if ".parquet" in suffixes or ".pq" in suffixes else pd.read_csv(path)


def load_files(data: DataConfig) -> DataBundle:
    """A data set from the config's own files (``data.interactions`` and friends, see
    :class:`~hybrid.config.DataConfig`): validated through :class:`~hybrid.data.interactions.Interactions`
    (bad rows named, duplicates merged and logged), item text aligned by id."""
    unknown = sorted(set(data.columns) - {f.name for f in dataclasses.fields(Columns)})
    if unknown:
        raise ValueError(f"data.columns: unknown key(s) {unknown}; use user, item, timestamp, weight")
    columns = Columns(**data.columns)
    if not Path(data.interactions).is_file():
        raise FileNotFoundError(f"data.interactions: file {data.interactions} does not exist")
    frame = Interactions.from_path(data.interactions, columns).to_frame()
    if data.item_text is None:
        item_text = pd.Series("", index=pd.Index(frame[ITEM].unique(), name=ITEM), dtype=object)
        titles = item_text
    else:
        table = _read_table(data.item_text, "item_text")
        id_column = data.item_id_column or columns.item
        if id_column not in table.columns:
            raise ValueError(f"data.item_id_column: column {id_column!r} is not in {data.item_text}; "
                             f"its columns are {list(table.columns)}")
        text_columns = data.text_columns or [c for c in table.columns if c != id_column]
        ids = coerce_ids_like(pd.Index(table[id_column]), pd.Index(frame[ITEM].unique()))
        texts = item_texts(table.set_index(ids), ids, text_columns, data.template)
        item_text = pd.Series(texts, index=ids, dtype=object)
        titles = table[text_columns[0]].fillna("").astype(str).set_axis(ids)
    user_text = None
    if data.user_features is not None:
        users = _read_table(data.user_features, "user_features")
        id_column = data.user_id_column or columns.user
        if id_column not in users.columns:
            raise ValueError(f"data.user_id_column: column {id_column!r} is not in {data.user_features}; "
                             f"its columns are {list(users.columns)}")
        ids = coerce_ids_like(pd.Index(users[id_column]), pd.Index(frame[USER].unique()))
        fields = [c for c in users.columns if c != id_column]
        profile = users[fields].astype(str).apply(lambda row: ". ".join(f"{k}: {v}" for k, v in row.items()), axis=1)
        user_text = pd.Series(profile.to_numpy(), index=ids, dtype=object)
    return _logged(DataBundle(Path(data.interactions).stem, frame, item_text, titles, user_text))
