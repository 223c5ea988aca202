"""The LLMRank protocol (Hou et al., ECIR 2024): rank one held-out item among m candidates.

Each evaluated user gets m candidates: one of their test items (the earliest by time, else a
seeded draw) and m − 1 items drawn uniformly from those they never interacted with. Models score
only those candidates (:meth:`Recommender.score_candidates`), which lets an LLM rank all of them.
Ties are broken against the held-out item (rank = 1 + number of candidates scoring at least as high).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hybrid.data.interactions import ITEM, TIMESTAMP, USER, Interactions
from hybrid.models.base import Recommender


def draw_candidates(
    users: np.ndarray, test: pd.DataFrame, index: Interactions, history: sp.csr_matrix,
    test_matrix: sp.csr_matrix, m: int, seed: int,
) -> np.ndarray:
    """int64 [n, m]: column 0 is each user's held-out item, the rest are non-interacted items."""
    rng = np.random.default_rng(seed)
    ordered = test.sort_values([USER, TIMESTAMP]) if TIMESTAMP in test.columns else test.sample(frac=1.0, random_state=seed)
    first = ordered.drop_duplicates(USER).set_index(USER)[ITEM]
    truth = index.item_index(first.reindex(index.user_ids[users]).to_numpy())
    n_items = history.shape[1]
    out = np.empty((len(users), m), np.int64)
    out[:, 0] = truth
    for row, user in enumerate(users):
        seen = set(history[user].indices) | set(test_matrix[user].indices)
        if n_items - len(seen) < m - 1:
            raise ValueError(f"user {index.user_ids[user]!r} has fewer than {m - 1} items left to draw negatives from")
        picked: list[int] = []
        while len(picked) < m - 1:
            for item in rng.integers(0, n_items, size=2 * m):
                if item not in seen and item not in picked:
                    picked.append(int(item))
                    if len(picked) == m - 1:
                        break
        out[row, 1:] = picked
    return out


def candidate_metrics(
    model: Recommender, users: np.ndarray, history: sp.csr_matrix, candidates: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10), batch_size: int = 1024,
) -> dict[str, float]:
    """NDCG@k and Recall@k (= HitRate@k: one relevant item) of the held-out item among the candidates."""
    ranks = []
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        with torch.inference_mode():
            scores = model.score_candidates(users[batch], history[users[batch]], candidates[batch]).float().cpu()
        ranks.append(1 + (scores[:, 1:] >= scores[:, :1]).sum(1).numpy())
    rank = np.concatenate(ranks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"ndcg@{k}"] = float(np.mean(np.where(rank <= k, 1.0 / np.log2(rank + 1), 0.0)))
        out[f"recall@{k}"] = float(np.mean(rank <= k))
    out["users"] = len(rank)
    return out
