"""Amazon Review Data 2018, "Magazine Subscriptions": a tiny text + time set (348 users).

Kept apart from :mod:`hybrid.data.datasets` because its catalogue is the point: the metadata file
lists 2,320 magazines while the distributor's 5-core review file covers 157, so most of the
catalogue is items nobody reviewed, as in a real shop.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

REVIEWS = "Magazine_Subscriptions_5.json.gz"
META = "meta_Magazine_Subscriptions.json.gz"
_TAG = re.compile(r"<[^>]*>?")


def _clean(value: object) -> str:
    """Plain text of a metadata field (a string or a list of strings), HTML tags removed."""
    parts = value if isinstance(value, list) else [value]
    text = " ".join(str(p) for p in parts if isinstance(p, str))
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def read_magazine(folder: Path) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(interactions, item text, item titles) of the magazine set in ``folder``.

    Interactions: one row per review (user = reviewerID, item = asin, timestamp = unixReviewTime,
    weight 1: a review is a subscription). Item text: brand, categories (the shared
    "Magazine Subscriptions" root dropped) and description, since 148 of the titles are broken HTML
    (PROVENANCE.md); the title is the brand, or the title where it is readable. Every asin of the
    metadata file is in the catalogue (duplicate lines merged, the first kept); a reviewed asin
    without metadata gets "" and is logged.
    """
    for name in (REVIEWS, META):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; the amazon-magazine loader needs it")
    reviews = pd.read_json(folder / REVIEWS, lines=True, dtype={"reviewerID": str, "asin": str})
    for column in ("reviewerID", "asin", "unixReviewTime"):
        if column not in reviews.columns:
            raise ValueError(f"{folder / REVIEWS}: no field {column!r} in its records")
    interactions = pd.DataFrame({"user": reviews["reviewerID"].astype(str), "item": reviews["asin"].astype(str),
                                 "timestamp": reviews["unixReviewTime"].astype("int64"), "weight": 1.0})
    meta = pd.read_json(folder / META, lines=True, dtype={"asin": str})
    duplicates = int(meta["asin"].duplicated().sum())
    if duplicates:
        logger.info("amazon-magazine: %d duplicate asin lines in %s merged (first kept)", duplicates, META)
    meta = meta.drop_duplicates("asin").set_index("asin")
    brand = meta["brand"].map(_clean)
    categories = meta["category"].map(lambda c: _clean([x for x in c if x != "Magazine Subscriptions"])
                                      if isinstance(c, list) else "")
    description = meta["description"].map(_clean)
    text = pd.Series([". ".join(p for p in parts if p) for parts in zip(brand, categories, description, strict=True)],
                     index=pd.Index(meta.index.astype(str), name="item"))
    title = meta["title"].map(_clean)
    titles = pd.Series(title.where(title.str.len() > 0, brand).to_numpy(), index=text.index)
    missing = pd.Index(interactions["item"].unique()).difference(text.index)
    if len(missing):
        logger.info("amazon-magazine: %d reviewed items have no metadata; their text is empty", len(missing))
        text = pd.concat([text, pd.Series("", index=missing)])
        titles = pd.concat([titles, pd.Series("", index=missing)])
    return interactions, text.rename("text"), titles.rename("title")
