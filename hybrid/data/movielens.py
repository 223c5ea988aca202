"""MovieLens loaders: ML-100K, ML-latest-small and ML-1M (through the CoLaKG implicit split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.bundle import DataBundle, existing_dir, int_column
from hybrid.data.lightgcn_format import parse_adjacency_lists, read_lightgcn_files

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
    folder = existing_dir(path, "ml-100k")
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

    Item text: "Toy Story (1995). Genres: Adventure, Animation". The users' free-text tags
    (tags.csv, lower-cased) are ``written``: interactions with a time, which reach an item's text
    only from a fit's training period (:mod:`hybrid.data.written`). movies.csv lists only films
    somebody rated, so the catalogue is derived from the interactions.
    """
    folder = existing_dir(path, "ml-latest-small")
    ratings = pd.read_csv(folder / "ratings.csv").rename(
        columns={"userId": "user", "movieId": "item", "rating": "weight"}
    )
    ratings = ratings.astype({"user": "int64", "item": "int64", "timestamp": "int64"})
    movies = pd.read_csv(folder / "movies.csv", keep_default_na=False, dtype={"movieId": "int64"})
    genres = movies["genres"].map(lambda g: [] if g == "(no genres listed)" else g.split("|"))
    index = pd.Index(movies["movieId"], name="item")
    titles = pd.Series(movies["title"].to_numpy(), index=index, name="title")
    text = pd.Series(_genre_text(movies["title"], genres).to_numpy(), index=index, name="text")

    tags = pd.read_csv(folder / "tags.csv", keep_default_na=False, dtype={"userId": "int64", "movieId": "int64"})
    tags["tag"] = tags["tag"].str.strip().str.lower()
    tags = tags[tags["tag"] != ""]
    written = tags.rename(columns={"userId": "user", "movieId": "item", "tag": "text"})
    written = written[["user", "item", "text", "timestamp"]].astype({"timestamp": "int64"}).reset_index(drop=True)
    return DataBundle("ml-latest-small", ratings[["user", "item", "timestamp", "weight"]], text, titles,
                      written=written)


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
    folder = existing_dir(path, "ml-1m")
    split_dir = folder / "colakg_implicit_split"
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"{split_dir} is not a folder; the ml-1m loader reads its interactions from the CoLaKG "
            "split there (train.txt, test.txt, item_map.txt, user_map.txt)"
        )
    train, test, item_map, user_map = _ml1m_split(split_dir)
    text, titles = _ml1m_movies(folder, split_dir, item_map)
    user_text = _ml1m_users(folder, split_dir, user_map)
    if predefined:
        return DataBundle(name, train, text, titles, user_text, test=test)
    interactions = pd.concat([train, test], ignore_index=True)
    return DataBundle(name, interactions, text, titles, user_text)


def _ml1m_split(split_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The CoLaKG split's train and test pairs, mapped back to MovieLens ids, and its item and user
    id maps (remapped -> original)."""
    train_bytes, test_bytes = read_lightgcn_files(split_dir)
    item_map = _read_id_map(split_dir / "item_map.txt", "MovieID")
    user_map = _read_id_map(split_dir / "user_map.txt", "UserID")
    parts: dict[str, pd.DataFrame] = {}
    for part, data in (("train.txt", train_bytes), ("test.txt", test_bytes)):
        role = str(split_dir / part)
        pairs = parse_adjacency_lists(data, role)
        parts[part] = pd.DataFrame({
            "user": _unmap(pairs["user"], user_map, role, split_dir / "user_map.txt"),
            "item": _unmap(pairs["item"], item_map, role, split_dir / "item_map.txt"),
        })
    return parts["train.txt"], parts["test.txt"], item_map, user_map


def _ml1m_movies(folder: Path, split_dir: Path, item_map: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(text, titles) of the split's movies, from movies.dat."""
    movies_file = folder / "movies.dat"
    movies = _read_double_colon(movies_file, ["MovieID", "Title", "Genres"], "latin-1")
    index = pd.Index(int_column(movies, "MovieID", movies_file).to_numpy(), name="item")
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
    return text.reindex(in_split), titles.reindex(in_split)


def _ml1m_users(folder: Path, split_dir: Path, user_map: pd.Series) -> pd.Series:
    """One sentence per user of users.dat ("A female under 18, a K-12 student.")."""
    users_file = folder / "users.dat"
    people = _read_double_colon(users_file, ["UserID", "Gender", "Age", "Occupation", "Zip-code"], "latin-1")
    user_index = pd.Index(int_column(people, "UserID", users_file).to_numpy(), name="user")
    missing = np.setdiff1d(user_map.to_numpy(), user_index.to_numpy())
    if missing.size:
        raise ValueError(
            f"{split_dir / 'user_map.txt'}: {missing.size} UserIDs are not in {users_file}, e.g. {missing[0]}"
        )
    gender = _coded(people, "Gender", _ML1M_GENDERS, users_file)
    people["Age"] = int_column(people, "Age", users_file)
    people["Occupation"] = int_column(people, "Occupation", users_file)
    age = _coded(people, "Age", _ML1M_AGES, users_file)
    job = _coded(people, "Occupation", _ML1M_OCCUPATIONS, users_file)
    sentences = "A " + gender + " " + age + job + "."
    return pd.Series(sentences.to_numpy(), index=user_index, name="text")
