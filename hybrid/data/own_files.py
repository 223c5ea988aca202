"""A data set from the config's own files (``data.interactions`` and friends)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hybrid.config import DataConfig
from hybrid.data.bundle import DataBundle, logged
from hybrid.data.interactions import (
    ITEM,
    TIMESTAMP,
    USER,
    Columns,
    Interactions,
    coerce_ids_like,
    item_texts,
)
from hybrid.data.parsing import parse_timestamps


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
    written = None if data.written is None else _written(data, columns, frame)
    return logged(DataBundle(Path(data.interactions).stem, frame, item_text, titles, user_text, written=written,
                             written_label="Users wrote", independent_catalogue=data.independent_catalogue))


def _written(data: DataConfig, columns: Columns, frame: pd.DataFrame) -> pd.DataFrame:
    """``data.written`` as user, item, text (and timestamp when the interactions have one)."""
    table = _read_table(data.written, "written")
    wanted = {USER: columns.user, ITEM: columns.item, "text": data.written_text_column}
    if TIMESTAMP in frame.columns and columns.timestamp:
        wanted[TIMESTAMP] = columns.timestamp
    missing = [column for column in wanted.values() if column not in table.columns]
    if missing:
        raise ValueError(f"data.written: column(s) {missing} not in {data.written}; its columns are {list(table.columns)}")
    out = pd.DataFrame({key: table[column].to_numpy() for key, column in wanted.items()})
    out[USER] = coerce_ids_like(pd.Index(out[USER]), pd.Index(frame[USER].unique())).to_numpy()
    out[ITEM] = coerce_ids_like(pd.Index(out[ITEM]), pd.Index(frame[ITEM].unique())).to_numpy()
    if TIMESTAMP in out.columns:
        out[TIMESTAMP] = parse_timestamps(out[TIMESTAMP], columns.timestamp)
    out["text"] = out["text"].fillna("").astype(str)
    return out
