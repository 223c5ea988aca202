"""Data-parallel BPR training over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

:func:`hybrid.models.train.fit_bpr` takes this path only when a process group of more than one
rank is initialised (``hybrid-train`` joins the one ``accelerate launch --multi_gpu`` or
``torchrun`` sets up, through accelerate's ``PartialState``); a single process never touches it.

    sharding     every rank draws the *whole* epoch with the same seeded generator and keeps every
                 W-th triple from its rank on (:func:`take_shard`), then runs its share in steps of
                 ``batch_size`` B. So step t of the W ranks together covers triples
                 [tWB, (t + 1)WB) of the epoch: the very batch of step t of one process with
                 ``batch_size`` W·B. A W-rank run is the single-process run with a W times larger
                 batch (and W times fewer steps an epoch), up to floating-point summation order;
                 the epoch sample is the single process's own when W divides its size. Drawing N
                 triples on every rank instead of N / W costs a few vectorised calls an epoch, far
                 below the steps, and keeps the generators in step without rank-dependent seeds.
    gradients    after each backward, one all-reduce of every parameter's gradient flattened into
                 one buffer, then divided by W (:func:`average_gradients`). Not DDP: its reducer
                 arms its hooks in ``DDP.forward``, and a training step never calls ``forward``
                 (it reads :meth:`~hybrid.models.train.BPRModel.layer0` and
                 :meth:`~hybrid.models.train.BPRModel.batch_embeddings`, LightGCN's over the
                 full-graph adjacency held as a plain attribute), so a DDP-wrapped model would
                 silently train each rank on its own gradients. One buffer is what DDP's buckets
                 amount to for a few embedding tables.
    agreement    only rank 0 evaluates on validation; it broadcasts the metrics (and, under a
                 time budget, its wall-clock verdict every epoch: :func:`from_main`), and every
                 rank runs the same
                 early-stopping bookkeeping on those numbers, so all stop at the same epoch and
                 keep the same best weights (a rank that stopped alone would hang the others'
                 next collective). The epoch loss is averaged over ranks, so a NaN stops all.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from hybrid.graph.samplers import EpochSample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel ranks."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, logs and saves."""
        return self.rank == 0


def current() -> World | None:
    """The initialised process group as a :class:`World`, or None for a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return World(dist.get_rank(), dist.get_world_size())


# Where launchers put the world size and rank (torchrun / accelerate, then MPI), as accelerate reads them.
SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _first_int(names: tuple[str, ...], default: int) -> int:
    return next((int(os.environ[name]) for name in names if os.environ.get(name)), default)


def launched_rank() -> int:
    """This process's rank as its launcher set it (0 without one), readable before :func:`join`."""
    return _first_int(RANK_VARIABLES, 0)


def join(device: torch.device) -> tuple[World | None, torch.device]:
    """Join the process group a launcher described in the environment (world size > 1), via
    accelerate's ``PartialState`` (gloo for ``device`` CPU, NCCL for CUDA); returns the world and
    this rank's device (``cuda:<local rank>`` on GPUs). Without a launcher: (None, ``device``),
    and accelerate is not imported."""
    if _first_int(SIZE_VARIABLES, 1) <= 1:
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and os.environ.get("MASTER_ADDR"):
            logger.warning("accelerate launch --cpu started a single process (several CPU processes need "
                           "mpirun); use `accelerate launch --multi_gpu --num_processes N` or torchrun instead")
        return None, device
    from accelerate import PartialState

    state = PartialState(cpu=device.type == "cpu")
    return current(), torch.device("cpu") if device.type == "cpu" else state.device


def leave() -> None:
    """Wait for every rank, then take the process group down (a gloo group left to interpreter
    shutdown can abort the process after its work is done). Nothing without a group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def epoch_triples(n: int, world: World) -> int:
    """Triples to draw for an epoch of ``n``: rounded up to a multiple of the world size, so
    every shard has the same length and every rank takes the same number of steps."""
    return math.ceil(n / world.size) * world.size


def take_shard(sample: EpochSample, world: World) -> EpochSample:
    """This rank's share of an epoch drawn for :func:`epoch_triples` triples: every
    ``world.size``-th triple from index ``world.rank`` on (see the module docstring for why strided)."""
    part = slice(world.rank, None, world.size)
    return EpochSample(sample.users[part], sample.positives[part], sample.candidates[part], sample.hard[part])


def _grad_params(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's parameters to every rank (a seeded init should agree already; this makes sure)."""
    for param in module.parameters():
        dist.broadcast(param.data, src=0)


def average_gradients(module: nn.Module, world: World) -> None:
    """Replace every gradient by its mean over the ranks: one all-reduce of one flat buffer.

    A parameter without a gradient on this rank contributes zeros (the buffer must have the same
    layout everywhere) and then holds the mean like the others.
    """
    params = _grad_params(module)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for param in params:
        param.grad = flat[offset : offset + param.numel()].view_as(param)
        offset += param.numel()


def computed_on_main(compute: Callable[[], dict[str, float]], keys: tuple[str, ...],
                     device: torch.device) -> dict[str, float]:
    """``compute()`` run on rank 0 alone; its values of ``keys`` on every rank."""
    mine = compute() if dist.get_rank() == 0 else {}
    return dict(zip(keys, from_main([mine.get(key, math.nan) for key in keys], device), strict=True))


def from_main(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (float64; NaN passes through)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def mean_over_ranks(value: float, world: World, device: torch.device) -> float:
    """The mean of ``value`` over the ranks, on every rank."""
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor) / world.size


def max_over_ranks(value: int, device: torch.device) -> int:
    """The largest ``value`` of any rank, on every rank."""
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor)


def parameter_digest(module: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal digests, bit-identical parameters."""
    digest = hashlib.sha256()
    for param in module.parameters():
        digest.update(param.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def gather_digests(module: nn.Module, world: World) -> list[str]:
    """Every rank's :func:`parameter_digest`, in rank order (on every rank)."""
    out: list[str] = [""] * world.size
    dist.all_gather_object(out, parameter_digest(module))
    return out
