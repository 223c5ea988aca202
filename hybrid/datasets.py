"""Data set loaders: the bundled Online Retail set and the real sets under a data root.

Every loader returns a :class:`DataBundle` whose ``interactions`` frame goes straight into
:meth:`hybrid.data.Interactions.from_frame` and whose text series feed the encoders and the
LLM prompts. The real data sets (MovieLens, Gowalla, Amazon) may not be redistributed, so
they are read in place from a data root (``--data-root`` or ``HYBRID_DATA_ROOT``); only
Online Retail (CC BY 4.0) ships with the package.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "HYBRID_DATA_ROOT"


@dataclass
class DataBundle:
    """One data set, ready for :class:`~hybrid.data.Interactions` and the text encoders.

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
    """UCI Online Retail (Chen 2015, CC BY 4.0), purchases from 2011-06 on, 5-core.

    Implicit feedback: one row per (customer, product), weight 1, timestamp = first purchase
    (UK wall clock encoded as UTC). 151,211 pairs, 3,235 users (int ids), 2,646 items
    (string stock codes such as "85123A"). ``scripts/build_online_retail.py`` derives the
    files; ``path`` reads a folder it wrote instead of the bundled copy.
    """
    folder = resources.files("hybrid") / "_data" / "online_retail" if path is None else Path(path)
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
    """train.txt and test.txt from a folder, a zip, or a folder holding one zip."""
    if path.is_dir() and (path / "train.txt").is_file():
        return (path / "train.txt").read_bytes(), (path / "test.txt").read_bytes()
    if path.is_dir():
        zips = sorted(path.glob("*.zip"))
        if len(zips) != 1:
            raise FileNotFoundError(
                f"{path} has no train.txt and {len(zips)} zip files; expected train.txt/test.txt or one zip"
            )
        path = zips[0]
    if not zipfile.is_zipfile(path):
        raise FileNotFoundError(f"{path} is neither a folder with train.txt/test.txt nor a zip file")
    with zipfile.ZipFile(path) as archive:
        names = {Path(n).name: n for n in archive.namelist() if not n.endswith("/")}
        missing = [f for f in ("train.txt", "test.txt") if f not in names]
        if missing:
            raise FileNotFoundError(f"{path} lacks {missing}; it holds {sorted(names)}")
        return archive.read(names["train.txt"]), archive.read(names["test.txt"])


def load_lightgcn(path: str | Path, name: str = "lightgcn") -> DataBundle:
    """A data set in the NGCF/LightGCN split format, e.g. Gowalla (29,858 users, 40,981 items).

    ``path`` is a folder with ``train.txt``/``test.txt`` (lines "user item item ..."), a zip
    holding them (read in place), or a folder with one such zip. ``interactions`` is the
    train split and ``test`` the official test split; there is no time and no text, so the
    text series are empty strings over every item id seen in either split.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LightGCN data {path} does not exist")
    train_bytes, test_bytes = _read_lightgcn_files(path)
    train = _parse_adjacency_lists(train_bytes, "train.txt")
    test = _parse_adjacency_lists(test_bytes, "test.txt")
    seen = np.concatenate([train["item"].to_numpy(), test["item"].to_numpy()])
    items = pd.Index(np.sort(pd.unique(seen)), name="item")
    empty = pd.Series("", index=items, dtype=str)
    return DataBundle(name, train, empty.rename("text"), empty.rename("title"), test=test)


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


# ---------------------------------------------------------------------------- registry
# name -> (folder under the data root, loader); None marks the bundled set.
_REGISTRY: dict[str, tuple[str | None, Callable[..., DataBundle]]] = {
    "online_retail": (None, load_online_retail),
    "ml-100k": ("ml-100k", load_ml100k),
    "ml-latest-small": ("ml-latest-small", load_ml_latest_small),
    "gowalla": ("lightgcn-gowalla", partial(load_lightgcn, name="gowalla")),
    "amazon-scientific": ("amazon-scientific-unisrec", load_amazon_scientific),
}
DATASET_NAMES = tuple(_REGISTRY)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def load_dataset(name: str, data_root: str | Path | None = None, path: str | Path | None = None) -> DataBundle:
    """Load a data set by registry name (see ``DATASET_NAMES``).

    Args:
        name: "online_retail" (bundled), "ml-100k", "ml-latest-small", "gowalla" or
            "amazon-scientific"; case, "-" and "_" do not matter.
        data_root: folder holding the real data sets (``<root>/ml-100k`` etc.); defaults to
            the ``HYBRID_DATA_ROOT`` environment variable. Not needed for the bundled set.
        path: the data set's own folder (or file), overriding ``data_root``.
    """
    matches = [key for key in _REGISTRY if _canonical(key) == _canonical(name)]
    if not matches:
        raise ValueError(f"name: unknown data set {name!r}; choose one of {list(DATASET_NAMES)}")
    folder, loader = _REGISTRY[matches[0]]
    if path is not None:
        return _logged(loader(Path(path)))
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
