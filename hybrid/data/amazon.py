"""Amazon loaders: Industrial and Scientific (UniSRec format) and the 2018 Magazine Subscriptions."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.bundle import DataBundle, existing_dir

# ---------------------------------------------------------------------------- Amazon (UniSRec)
_AMAZON_TITLE = re.compile(r"^(.*?)\. (?:Industrial & Scientific|\. )")


def load_amazon_scientific(path: str | Path) -> DataBundle:
    """Amazon "Industrial and Scientific" in UniSRec format: 2,928 users, 1,585 items.

    The ``.inter`` files hold (user, history prefix, next item) rows; each user's full
    sequence is the longest history + target across train/valid/test. The source has an order
    but no times: the ``order`` column is the position in that sequence (0, 1, 2, ...), which
    leave-last splits use, while temporal and replay splits refuse it and no model sees it as
    time. The item table is product metadata, independent of the interactions. Ids are the
    files' integer indices; item text (title. categories. brand.) comes from
    ``Scientific.text`` via ``Scientific.item2index``.
    """
    folder = existing_dir(path, "amazon-scientific-unisrec")
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
            "order": positions,
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
    return DataBundle("amazon-scientific", interactions, text.rename("text"), titles.rename("title"),
                      independent_catalogue=True)


# ---------------------------------------------------------------------------- Amazon magazines
def load_amazon_magazine(path: str | Path) -> DataBundle:
    """Amazon 2018 "Magazine Subscriptions": 2,375 reviews by 348 users with times, and a catalogue
    of every magazine in the metadata file (:mod:`hybrid.data.magazine`)."""
    from hybrid.data.magazine import read_magazine

    interactions, text, titles = read_magazine(existing_dir(path, "amazon2018-magazine-subscriptions"))
    return DataBundle("amazon-magazine", interactions, text, titles, independent_catalogue=True)
