"""The content-scale pricing equals re-ranking with the cold items inserted, for every scale."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hybrid.evaluation.metrics import hit_matrix
from hybrid.models.calibration import cold_slot_loss
from hybrid.retrieval.ranking import mask_history


def recall_at_k(users: torch.Tensor, items: torch.Tensor, train: sp.csr_matrix, valid: sp.csr_matrix, k: int,
                exclude: np.ndarray | None = None) -> float:
    """Brute force: rank every item (but ``exclude``), mask train, mean recall over users with a valid item."""
    rows = np.flatnonzero(np.diff(valid.indptr) > 0)
    scores = mask_history(users[rows] @ items.T, train[rows])
    if exclude is not None:
        scores[:, torch.as_tensor(exclude)] = -torch.inf
    top = torch.topk(scores, k, dim=1).indices
    n_rel = torch.as_tensor(np.diff(valid[rows].indptr)).double()
    return float((hit_matrix(top, valid[rows]).double().sum(1) / n_rel).mean())


def random_split(seed: int, n_users: int = 60, n_items: int = 80, n_cold: int = 15) -> tuple:
    rng = np.random.default_rng(seed)
    cold = np.zeros(n_items, bool)
    cold[rng.choice(n_items, n_cold, replace=False)] = True
    warm_ids = np.flatnonzero(~cold)
    train_rows, valid_rows = [], []
    for u in range(n_users):
        picks = rng.choice(warm_ids, 8, replace=False)
        train_rows += [(u, i) for i in picks[:6]]
        valid_rows += [(u, i) for i in picks[6 : 6 + rng.integers(0, 3)]]  # 0, 1 or 2 valid items

    def csr(pairs: list[tuple[int, int]]) -> sp.csr_matrix:
        u, i = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
        return sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))

    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_users, 8, generator=gen, dtype=torch.float64)
    graph = torch.randn(n_items, 8, generator=gen, dtype=torch.float64)
    content = torch.randn(n_items, 8, generator=gen, dtype=torch.float64)
    return users, graph, content, cold, csr(train_rows), csr(valid_rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_reranking_with_cold_items_inserted(seed: int) -> None:
    users, graph, content, cold, train, valid = random_split(seed)
    scales = [0.1, 0.3, 0.6, 1.0, 2.0]
    losses = cold_slot_loss(users, graph, content, cold, train, valid, scales, k=10, batch_size=16)
    mask = torch.as_tensor(cold).unsqueeze(1)
    reference = recall_at_k(users, graph, train, valid, 10, exclude=cold)
    for s in scales:
        blended = torch.where(mask, s * content, graph)
        expected = 1 - recall_at_k(users, blended, train, valid, 10) / reference
        assert losses[s] == pytest.approx(expected, abs=1e-9)


def test_no_cold_items_cost_nothing_and_scales_must_be_positive() -> None:
    users, graph, content, cold, train, valid = random_split(4)
    none_cold = np.zeros_like(cold)
    assert set(cold_slot_loss(users, graph, content, none_cold, train, valid, [0.5, 1.0]).values()) == {0.0}
    with pytest.raises(ValueError, match="> 0"):
        cold_slot_loss(users, graph, content, cold, train, valid, [0.0, 1.0])
