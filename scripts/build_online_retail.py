"""Derive the bundled Online Retail files from the original UCI file.

The package ships a small, trimmed copy of UCI Online Retail (Chen 2015, CC BY 4.0) so the
demo runs offline. This script is the only way those files are made, so anyone can check
them against the source: it follows the cleaning rules of
``shared/opendata/uci_online_retail/PROVENANCE.md``, checks the counts given there, trims
to pairs formed from 2011-06-01 on, applies an iterative 5-core to the demo's training period
only (before ``SPLIT_AT``, the split of ``configs/default.yaml``), and writes gzip CSVs with
mtime 0 (the same bytes on every run).

Why the core sees the training period only: a core over the whole period keeps only the new
products that sold to five customers *in the test period*, which tells every model which new
items will sell. Here every pair of the test period is kept, and the catalogue (items.csv) is
every product sold in the window, so the demo's new products include those that sold once, or
never, after the split.

Usage::

    python scripts/build_online_retail.py [SOURCE.rda] [--out hybrid/data/_data/online_retail]

Reading the ``.rda`` takes one to two minutes (``rdata`` is a pure-Python parser).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import warnings
from pathlib import Path

import pandas as pd
import rdata

logger = logging.getLogger("build_online_retail")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "opendata" / "uci_online_retail" / "source" / "onlineretail.rda"
DEFAULT_OUT = REPO / "hybrid" / "data" / "_data" / "online_retail"
SOURCE_SHA256 = "d686c7ec387fdc64fde3a5b6f1c31d43751735f4053f34c92e677beacf5e0664"

SERVICE_CODES = ("23444", "23702")  # "Next Day Carriage", "High Resolution Image" (PROVENANCE.md)
WINDOW_START = pd.Timestamp("2011-06-01")  # wall clock, encoded as UTC like every timestamp here
SPLIT_AT = pd.Timestamp("2011-11-01")  # configs/default.yaml's split.at (a test keeps them equal)
CORE = 5

# Counts that PROVENANCE.md states for the cleaning (a mismatch is a bug), and those of this
# script's trim (the window, the training-period core), checked so a rerun cannot drift.
EXPECTED_CLEAN = {"rows": 541_909, "lines": 396_255, "events": 386_244, "pairs": 266_155,
                  "users": 4_334, "items": 3_657}
EXPECTED_TRIMMED = {"pairs": 151_107, "users": 3_491, "items": 3_233}

ATTRIBUTION = """\
# Attribution: UCI Online Retail

The files in this folder are derived from:

> Chen, D. (2015). Online Retail [Dataset]. UCI Machine Learning Repository.
> https://doi.org/10.24432/C5BW33. Licensed under CC BY 4.0
> (https://creativecommons.org/licenses/by/4.0/). Modified: cancellations, rows without
> a customer id and non-product codes removed; aggregated to user-item interactions.

Please also cite Chen, D., Sain, S. L. & Guo, K. (2012). Data mining for the online retail
industry: a case study of RFM model-based customer segmentation using data mining.
*Journal of Database Marketing & Customer Strategy Management* 19(3):197-208,
doi:10.1057/dbm.2012.17.

The copy used is `data/onlineretail.rda` of the R package `onlineretail` 0.1.2
(Allan Quadros; GitHub `allanvc/onlineretail`), which includes the data with the donor's
permission under CC0, sha256 `{sha256}`.

## Changes made (by `scripts/build_online_retail.py`)

- Removed cancellations (InvoiceNo starting with "C"), rows without a CustomerID, and rows
  with Quantity <= 0 or UnitPrice <= 0.
- Kept product codes only (StockCode starting with five digits), and dropped the service
  codes 23444 "Next Day Carriage" and 23702 "High Resolution Image".
  Item ids are upper-cased StockCodes; user ids are the integer CustomerIDs.
- Aggregated purchase lines to one row per (customer, product).
- Trimmed: kept the (customer, product) pairs whose first purchase is on or after
  2011-06-01; among the pairs before {split} (the demo's training period) repeatedly removed
  customers and products with fewer than {core} distinct partners (iterative {core}-core);
  every pair from {split} on is kept.

Result: {pairs:,} pairs, {users:,} customers, {items:,} products in the catalogue
(every product and customer with a purchase in the window, {unbought:,} products without a
kept pair), {first} to {last}.

## Files (gzip CSV, UTF-8, header row)

Timestamps are integer Unix seconds holding the source's UK wall-clock time as if it were
UTC: `pd.to_datetime(ts, unit="s")` gives back the original invoice time.

- `interactions.csv.gz`: `user_id,item_id,timestamp,n_invoices,quantity`; timestamp = first
  purchase of the pair, n_invoices = distinct invoices, quantity = units bought.
- `items.csv.gz` (the catalogue: every product sold in the window): `item_id,title,alt_titles,first_seen,n_users,median_unit_price`;
  title = most frequent description (ties: lexicographically first), alt_titles = the
  other descriptions joined by " | "; first_seen and median_unit_price over all clean
  lines in the source (a product's first sale may precede the window); n_users within
  `interactions.csv.gz`.
- `users.csv.gz` (every customer with a purchase in the window): `user_id,country,first_seen,n_items`; country = most
  frequent on the customer's clean lines; first_seen over all clean lines; n_items within
  `interactions.csv.gz`.
"""


def read_source(path: Path) -> tuple[pd.DataFrame, str]:
    """The raw 541,909-row data frame (InvoiceDate: float seconds of the UK wall clock) and its sha256."""
    if not path.is_file():
        raise FileNotFoundError(f"source file {path} does not exist; pass its path as SOURCE")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        logger.warning("source sha256 %s differs from PROVENANCE.md's %s", digest, SOURCE_SHA256)
    with warnings.catch_warnings():
        # rdata has no POSIXct constructor; the column still arrives as float seconds (tzone "UTC").
        warnings.filterwarnings("ignore", message="Missing constructor", category=UserWarning)
        return rdata.read_rda(path)["onlineretail"], digest


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """Purchase lines of real products by known customers, per PROVENANCE.md."""
    keep = (
        ~raw["InvoiceNo"].str.upper().str.startswith("C")
        & raw["CustomerID"].notna()
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
    )
    lines = raw[keep.to_numpy()]
    item = lines["StockCode"].str.upper()
    product = (item.str.match(r"^\d{5}") & ~item.isin(SERVICE_CODES)).to_numpy()
    lines = lines[product]
    return pd.DataFrame(
        {
            "user_id": lines["CustomerID"].astype("int64").to_numpy(),
            "item_id": item[product].astype(str).to_numpy(),
            "invoice": lines["InvoiceNo"].astype(str).to_numpy(),
            "timestamp": lines["InvoiceDate"].round().astype("int64").to_numpy(),
            "quantity": lines["Quantity"].astype("int64").to_numpy(),
            "unit_price": lines["UnitPrice"].to_numpy(),
            "description": lines["Description"].astype(str).to_numpy(),
            "country": lines["Country"].astype(str).to_numpy(),
        }
    )


def aggregate(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): first purchase time, distinct invoices, total units."""
    return (
        lines.groupby(["user_id", "item_id"], sort=True)
        .agg(timestamp=("timestamp", "min"), n_invoices=("invoice", "nunique"), quantity=("quantity", "sum"))
        .reset_index()
    )


def k_core(pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    """Drop users and items with fewer than ``k`` partners until none is left to drop."""
    while True:
        n_items = pairs.groupby("user_id")["item_id"].transform("size")
        n_users = pairs.groupby("item_id")["user_id"].transform("size")
        keep = (n_items >= k) & (n_users >= k)
        if keep.all():
            return pairs.reset_index(drop=True)
        pairs = pairs[keep]


def trim(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs first bought on or after ``WINDOW_START``; the ``CORE``-core applied to those before
    ``SPLIT_AT`` only (the module docstring says why), every later pair kept.

    Filtering pairs by their first purchase (rather than purchase lines by date) keeps every
    purchase of a kept pair inside the window, so n_invoices and quantity need no re-count.
    """
    start, split = (int(t.tz_localize("UTC").timestamp()) for t in (WINDOW_START, SPLIT_AT))
    window = pairs[pairs["timestamp"] >= start]
    before = window["timestamp"] < split
    return pd.concat([k_core(window[before], CORE), window[~before]], ignore_index=True)


def window_catalogue(pairs: pd.DataFrame) -> pd.DataFrame:
    """(user_id, item_id) of every pair first bought in the window: whose users and items the
    catalogue holds, kept pairs or not."""
    start = int(WINDOW_START.tz_localize("UTC").timestamp())
    return pairs[pairs["timestamp"] >= start][["user_id", "item_id"]]


def _mode(values: pd.Series) -> str:
    """Most frequent value; ties go to the lexicographically first."""
    counts = values.value_counts()
    return str(min(counts.index[counts.to_numpy() == counts.max()]))


def describe_items(lines: pd.DataFrame, kept: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Title, other descriptions, first sale, users (in ``kept``; 0 for a product with no kept
    pair) and median price of each item of ``catalogue``."""
    lines = lines[lines["item_id"].isin(catalogue["item_id"])]
    counts = lines.groupby(["item_id", "description"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item_id", "n", "description"], ascending=[True, False, True])
    names = counts.groupby("item_id")["description"].agg(list)
    by_item = lines.groupby("item_id")
    items = pd.DataFrame(
        {
            "title": names.str[0],
            "alt_titles": names.map(lambda d: " | ".join(d[1:])),
            "first_seen": by_item["timestamp"].min(),
            "n_users": kept.groupby("item_id").size().reindex(names.index, fill_value=0),
            "median_unit_price": by_item["unit_price"].median().round(3),
        }
    )
    return items.rename_axis("item_id").reset_index()


def describe_users(lines: pd.DataFrame, kept: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Country, first purchase and number of kept items (0 with none) of each user of ``catalogue``."""
    lines = lines[lines["user_id"].isin(catalogue["user_id"])]
    by_user = lines.groupby("user_id")
    users = pd.DataFrame(
        {
            "country": by_user["country"].agg(_mode),
            "first_seen": by_user["timestamp"].min(),
            "n_items": kept.groupby("user_id").size().reindex(by_user.size().index, fill_value=0),
        }
    )
    return users.rename_axis("user_id").reset_index()


def write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    """gzip with mtime 0 and no file name in the header, so reruns give identical bytes."""
    text = frame.to_csv(index=False, lineterminator="\n")
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    logger.info("wrote %s: %d rows, %s bytes", path.name, len(frame), f"{path.stat().st_size:,}")


def check(stage: str, got: dict[str, int], expected: dict[str, int]) -> None:
    """Log the counts and refuse to write files that disagree with PROVENANCE.md."""
    logger.info("%s: %s", stage, ", ".join(f"{k} {v:,}" for k, v in got.items()))
    wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    if wrong:
        raise RuntimeError(f"{stage} counts differ from PROVENANCE.md (got, expected): {wrong}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="onlineretail.rda")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the derived files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    raw, digest = read_source(args.source)
    lines = clean(raw)
    pairs = aggregate(lines)
    n_events = len(lines.drop_duplicates(["user_id", "item_id", "invoice"]))
    check("cleaned", {"rows": len(raw), "lines": len(lines), "events": n_events, "pairs": len(pairs),
                      "users": pairs["user_id"].nunique(), "items": pairs["item_id"].nunique()},
          EXPECTED_CLEAN)

    kept = trim(pairs)
    catalogue = window_catalogue(pairs)
    check("trimmed", {"pairs": len(kept), "users": catalogue["user_id"].nunique(),
                      "items": catalogue["item_id"].nunique()}, EXPECTED_TRIMMED)
    kept = kept.sort_values(["user_id", "timestamp", "item_id"]).reset_index(drop=True)

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv_gz(kept, args.out / "interactions.csv.gz")
    write_csv_gz(describe_items(lines, kept, catalogue), args.out / "items.csv.gz")
    write_csv_gz(describe_users(lines, kept, catalogue), args.out / "users.csv.gz")
    first, last = (pd.to_datetime(kept["timestamp"].agg(f), unit="s") for f in ("min", "max"))
    (args.out / "ATTRIBUTION.md").write_text(
        ATTRIBUTION.format(sha256=digest, core=CORE, pairs=len(kept), split=f"{SPLIT_AT:%Y-%m-%d}",
                           users=catalogue["user_id"].nunique(), items=catalogue["item_id"].nunique(),
                           unbought=catalogue["item_id"].nunique() - kept["item_id"].nunique(),
                           first=f"{first:%Y-%m-%d %H:%M}", last=f"{last:%Y-%m-%d %H:%M}"),
        encoding="utf-8",
    )
    total = sum(p.stat().st_size for p in args.out.iterdir())
    logger.info("total %s bytes in %s", f"{total:,}", args.out)


if __name__ == "__main__":
    main()
