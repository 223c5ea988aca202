"""Interaction-count buckets: the one definition the gate, the new-user path and the metrics share.

An item (or user) with n interactions is in bucket β(n) = the number of :data:`EDGES` at most n:
0 (none), 1–4, 5–19, 20–99, 100+. The gate learns one set of weights per bucket, the report
breaks recall down by them, and "sparse" (exploration's eligible items, the new-user gates'
users) means the first two.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

EDGES = (1, 5, 20, 100)
NAMES = tuple(["0", *(f"{low}-{high - 1}" for low, high in pairwise(EDGES)), f"{EDGES[-1]}+"])
# (name, lowest count, highest count) of each bucket, for the report's breakdown.
RANGES: tuple[tuple[str, int, int], ...] = tuple(
    (name, low, high - 1) for name, low, high in zip(NAMES, (0, *EDGES), (*EDGES, np.iinfo(np.int64).max + 1), strict=True)
)
SPARSE_BELOW = EDGES[1]  # counts below this are "new or sparse" (buckets 0 and 1-4)


def bucket_of(counts: np.ndarray) -> np.ndarray:
    """int64 [n]: β(n) of each count."""
    return np.searchsorted(np.asarray(EDGES), np.asarray(counts), side="right").astype(np.int64)


def bucket_labels(counts: np.ndarray) -> np.ndarray:
    """object [n]: the name of β(n) of each count (:data:`NAMES`), as the report labels items."""
    return np.asarray(NAMES, dtype=object)[bucket_of(counts)]
