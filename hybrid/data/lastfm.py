"""The HetRec 2011 Last.fm 2K data set."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.bundle import DataBundle, existing_dir, int_column

logger = logging.getLogger(__name__)


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
    folder = existing_dir(path, "hetrec-lastfm-2k")
    plays_file = folder / "user_artists.dat"
    plays = _read_tsv(plays_file, ["userID", "artistID", "weight"])
    interactions = pd.DataFrame({
        "user": int_column(plays, "userID", plays_file).to_numpy(),
        "item": int_column(plays, "artistID", plays_file).to_numpy(),
        "weight": int_column(plays, "weight", plays_file).to_numpy(),
    })
    artists_file = folder / "artists.dat"
    artists = _read_tsv(artists_file, ["id", "name"])
    ids = pd.Index(int_column(artists, "id", artists_file).to_numpy(), name="item")
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
