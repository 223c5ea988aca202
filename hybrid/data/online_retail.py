"""The bundled UCI Online Retail data set (CC BY 4.0)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from hybrid.data.bundle import DataBundle


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
