"""One chunk of ``hybrid-recommend``'s lists as a Parquet file: what the single process and the Ray
actors (:mod:`hybrid.serving.ray_batch`) both write, so their files are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybrid.recommender import HybridRecommender


def write_chunk(model: HybridRecommender, batch: pd.Index, k: int, explain: bool, path: Path) -> None:
    """The lists of ``batch`` as one Parquet file at ``path`` (written beside it, then renamed);
    ``explain``: with a ``because`` column, each item's explanation in one line."""
    ranked = model.recommend(list(batch), k=k, explain=explain)
    items, scores = ranked[0], ranked[1]
    width = items.shape[1]
    columns = {
        "user": np.repeat(np.asarray(batch, dtype=object), width).tolist(),
        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(batch)),
        "item": items.ravel().tolist(),
        "score": scores.ravel().astype(np.float32),
    }
    if explain:
        columns["because"] = [e["because"] for row in ranked[2] for e in row]
    temporary = path.with_suffix(".tmp")
    pq.write_table(pa.table(columns), temporary)
    temporary.replace(path)
