"""The graph filters' top right singular vectors over row shards, with ``torch.distributed``.

Randomised subspace iteration on AᵀA for A [n_users, n_items] whose rows are split over the ranks
of a process group (gloo on CPU, NCCL on GPU; the one ``hybrid-train`` joins under ``torchrun`` or
``accelerate launch``). Every product AᵀA X = Σ_r A_rᵀ (A_r X) is one local sparse product per rank
and an all-reduce of [n_items, q]; the Rayleigh–Ritz step reads the small Gram matrix
(A Q)ᵀ (A Q) = Σ_r (A_r Q)ᵀ (A_r Q), all-reduced too. The random start is drawn from the seed on
every rank alike, so all ranks hold the same basis throughout and end with the same vectors;
one process (no group) runs the same steps, so a W-rank run is the single process's result up
to floating-point summation order (each vector up to its sign, fixed here: its largest entry positive).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

OVERSAMPLE = 10


def world_size() -> int:
    """Ranks in the initialised process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def row_shard(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """This rank's contiguous block of rows of ``matrix`` (all of it without a process group)."""
    size = world_size()
    if size == 1:
        return matrix
    rank, n = dist.get_rank(), matrix.shape[0]
    return matrix[rank * n // size:(rank + 1) * n // size]


def _summed(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def sharded_top_right_vectors(shard: sp.csr_matrix, k: int, iterations: int, seed: int,
                              device: torch.device) -> torch.Tensor:
    """float32 [n_items, k]: the top ``k`` right singular vectors of the matrix whose rows this
    rank holds as ``shard`` [its rows, n_items] (see the module docstring); the same on every rank.

    Args:
        iterations: power steps after the first product (as :func:`torch.svd_lowrank`'s ``niter``).
        seed: draws the random start, alike on every rank.
    """
    n_items = shard.shape[1]
    q = min(k + OVERSAMPLE, n_items)
    coo = shard.tocoo()
    a = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, size=shard.shape, dtype=torch.float32,
                                device=device, check_invariants=False).coalesce()
    at = a.t().coalesce()
    basis = torch.randn(n_items, q, generator=torch.Generator().manual_seed(seed)).to(device)

    def gram(x: torch.Tensor) -> torch.Tensor:  # AᵀA x, summed over the ranks
        return _summed(at @ (a @ x))

    for _ in range(iterations):
        basis = orthonormal(gram(basis), exact=False)
    basis = orthonormal(gram(basis), exact=True)
    projected = a @ basis  # [its rows, q]
    small = _summed(projected.T @ projected).double()
    _, vectors = torch.linalg.eigh(small)  # ascending
    top = (basis.double() @ vectors[:, -k:].flip(1)).float()
    sign = torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
    return (top * torch.where(sign == 0, 1.0, sign)).contiguous()


def orthonormal(x: torch.Tensor, exact: bool) -> torch.Tensor:
    """A row-major basis of the columns of tall ``x`` [n, q]. ``exact``: Householder QR. Else, for
    the power steps, where only a well-conditioned basis matters, Cholesky QR (X R⁻¹ with RᵀR = XᵀX,
    a GEMM and a triangular solve, about twice as fast), and Householder where XᵀX is too
    ill-conditioned to factor. Row-major because a sparse product with a column-major dense
    operand (what QR returns) is about four times slower."""
    if not exact:
        factor, info = torch.linalg.cholesky_ex((x.T @ x).double())
        if int(info) == 0:
            return torch.linalg.solve_triangular(factor.T.to(x.dtype), x, upper=True, left=False).contiguous()
    return torch.linalg.qr(x).Q.contiguous()
