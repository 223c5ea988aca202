"""Each metric against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from hybrid.data.buckets import bucket_labels
from hybrid.metrics import ranking_metrics, restrict_columns


def csr(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = zip(*data, strict=True) if data else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_one_user_by_hand() -> None:
    # ranked 5, 1, 7, 2; relevant {1, 2, 9}: hits at ranks 2 and 4
    top = np.array([[5, 1, 7, 2]])
    m = ranking_metrics(top, csr([[1, 2, 9]]), ks=[2, 4])
    assert m["recall@2"] == pytest.approx(1 / 3)
    assert m["precision@2"] == pytest.approx(1 / 2)
    assert m["recall@4"] == pytest.approx(2 / 3)
    assert m["precision@4"] == pytest.approx(2 / 4)
    dcg4 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg4 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(|T|=3, K=4) = 3 ideal hits
    assert m["ndcg@4"] == pytest.approx(dcg4 / idcg4)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["mrr@4"] == pytest.approx(1 / 2)
    assert m["hit_rate@2"] == 1.0


def test_averaging_skips_users_without_test_items() -> None:
    top = np.array([[0, 1], [2, 3], [4, 5]])
    m = ranking_metrics(top, csr([[0], [], [9]]), ks=[2])
    assert m["users"] == 2
    assert m["recall@2"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert m["mrr@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(0.5)
    assert m["hit_rate@2"] == pytest.approx(0.5)


def test_ndcg_ideal_uses_min_of_test_size_and_k() -> None:
    # one relevant item at rank 1: perfect NDCG even though K=3
    m = ranking_metrics(np.array([[4, 0, 1]]), csr([[4]]), ks=[3])
    assert m["ndcg@3"] == pytest.approx(1.0)
    assert m["recall@3"] == 1.0 and m["precision@3"] == pytest.approx(1 / 3)


def test_restrict_columns_and_buckets() -> None:
    rel = csr([[1, 2, 3]], n_items=4)
    keep = np.array([False, True, False, True])
    assert restrict_columns(rel, keep).indices.tolist() == [1, 3]
    assert bucket_labels(np.array([0, 1, 4, 5, 19, 20, 99, 100, 5000])).tolist() == [
        "0", "1-4", "1-4", "5-19", "5-19", "20-99", "20-99", "100+", "100+",
    ]


def test_k_larger_than_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="k=5 is larger than the 2 ranked items"):
        ranking_metrics(np.array([[0, 1]]), csr([[0]]), ks=[5])
