"""The LightGCN text format (train.txt/test.txt adjacency lists, or a zip holding them): Gowalla and any set in it."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from hybrid.data.bundle import DataBundle


def parse_adjacency_lists(data: bytes, role: str) -> pd.DataFrame:
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


def read_lightgcn_files(path: Path) -> tuple[bytes, bytes]:
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
        return read_lightgcn_files(found[0])
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
    train_bytes, test_bytes = read_lightgcn_files(path)
    train = parse_adjacency_lists(train_bytes, "train.txt")
    test = parse_adjacency_lists(test_bytes, "test.txt")
    seen = np.concatenate([train["item"].to_numpy(), test["item"].to_numpy()])
    items = pd.Index(np.sort(pd.unique(seen)), name="item")
    empty = pd.Series("", index=items, dtype=str)
    return DataBundle(name, train, empty.rename("text"), empty.rename("title"), test=test)
