"""The graph filters' randomised SVD over row shards (hybrid.graph.sharded_svd): two gloo processes
give the single process's vectors (up to float rounding; signs fixed), and those are the top
singular vectors of a matrix with a clear spectral gap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hybrid.graph import spectral
from hybrid.graph.sharded_svd import row_shard, sharded_top_right_vectors

K = 6


def gapped_matrix() -> sp.csr_matrix:
    """A sparse 300 x 240 matrix: six strong directions (a planted low rank) over weak noise."""
    rng = np.random.default_rng(0)
    left, right = rng.random((300, K)) < 0.3, rng.random((K, 240)) < 0.3
    planted = (left.astype(np.float32) * np.linspace(3, 1, K)) @ right.astype(np.float32)
    noise = (rng.random((300, 240)) < 0.02).astype(np.float32) * 0.1
    return sp.csr_matrix(planted + noise)


def _rank(rank: int, size: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    try:
        matrix = gapped_matrix()
        sharded = sharded_top_right_vectors(row_shard(matrix), K, 4, 7, torch.device("cpu"))
        spectral.EXACT_SVD_MAX = 10  # so the filters' own entry point takes the group's path
        entry = spectral.top_right_vectors(matrix, K, 4, 7, torch.device("cpu"))
        torch.save({"sharded": sharded, "entry": entry}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_vectors(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(tmp_path / "v")), nprocs=2, join=True)
    alone = sharded_top_right_vectors(gapped_matrix(), K, 4, 7, torch.device("cpu"))
    for rank in range(2):
        got = torch.load(tmp_path / f"v.{rank}")
        assert torch.allclose(got["sharded"], alone, atol=1e-4)
        assert torch.allclose(got["entry"], alone, atol=1e-4)


def test_the_vectors_are_the_top_singular_vectors() -> None:
    matrix = gapped_matrix()
    vectors = sharded_top_right_vectors(matrix, K, 4, 7, torch.device("cpu")).double().numpy()
    exact = np.linalg.svd(matrix.toarray().astype(np.float64))[2][:K].T
    assert np.allclose(np.abs((vectors * exact).sum(0)), 1.0, atol=1e-3)  # each column, up to its sign
