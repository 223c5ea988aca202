"""BPR fold-in: moves a new user towards their items and away from the rest, deterministically."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hybrid.models.fold_in import refine_by_bpr


def planted() -> tuple[torch.Tensor, sp.csr_matrix, torch.Tensor]:
    """30 items in 3 clusters along 3 axes plus a shared popularity axis; user 0 names items of
    cluster 0, user 1 names none. The mean start leans on the popularity axis."""
    gen = torch.Generator().manual_seed(0)
    items = 0.1 * torch.randn(30, 4, generator=gen)
    for cluster in range(3):
        items[cluster * 10 : (cluster + 1) * 10, cluster] += 1.0
    items[:, 3] += 2.0  # every item is "popular": the mean user scores all of them alike
    history = sp.csr_matrix((np.ones(3), ([0, 0, 0], [0, 1, 2])), shape=(2, 30))
    start = torch.stack([items[:3].mean(0), torch.zeros(4)])
    return items, history, start


def bpr_objective(user: torch.Tensor, items: torch.Tensor, positives: list[int], negatives: list[int]) -> float:
    scores = items @ user
    return float(F.logsigmoid(scores[positives].unsqueeze(1) - scores[negatives].unsqueeze(0)).mean())


def test_refinement_separates_the_users_items_from_the_rest() -> None:
    items, history, start = planted()
    out = refine_by_bpr(items, start, history, np.arange(30), steps=50, lr=0.05)
    negatives = list(range(3, 30))
    assert bpr_objective(out[0], items, [0, 1, 2], negatives) > bpr_objective(start[0], items, [0, 1, 2], negatives)
    unseen = items[3:] @ out[0]
    same_cluster = unseen[:7]  # items 3..9 share the user's cluster
    assert float(same_cluster.min()) > float(unseen[7:].max())
    torch.testing.assert_close(out[1], start[1])  # no history: unchanged


def test_same_inputs_same_vectors_and_zero_steps_is_the_start() -> None:
    items, history, start = planted()
    first = refine_by_bpr(items, start, history, np.arange(30), steps=10, lr=0.05, seed=3)
    again = refine_by_bpr(items, start, history, np.arange(30), steps=10, lr=0.05, seed=3)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(refine_by_bpr(items, start, history, np.arange(30), steps=0, lr=0.05), start)


def test_items_are_not_modified_and_runs_under_inference_mode() -> None:
    items, history, start = planted()
    before = items.clone()
    with torch.inference_mode():
        out = refine_by_bpr(items, start, history, np.arange(30), steps=5, lr=0.05)
    torch.testing.assert_close(items, before, rtol=0, atol=0)
    assert not torch.equal(out[0], start[0])


def test_a_users_vector_does_not_depend_on_the_rest_of_the_batch() -> None:
    items, _, _ = planted()
    history = sp.csr_matrix((np.ones(5), ([0, 0, 1, 1, 1], [0, 1, 12, 13, 25])), shape=(2, 30))
    start = torch.stack([items[:2].mean(0), items[[12, 13, 25]].mean(0)])
    both = refine_by_bpr(items, start, history, np.arange(30), steps=10, lr=0.05)
    for row in (0, 1):
        alone = refine_by_bpr(items, start[row : row + 1], history[row], np.arange(30), steps=10, lr=0.05)
        torch.testing.assert_close(both[row : row + 1], alone)
