"""The shared BPR trainer for every embedding model (MF, NGCF, LightGCN and the hybrid).

A model plugs in by subclassing :class:`BPRModel`: it gives its layer-0 embeddings
(:meth:`BPRModel.layer0`) and how they become final embeddings (:meth:`BPRModel.propagate`). The
trainer owns everything else:

    loss = mean_b −log σ(ŷ_ui − ŷ_uj)  +  λ · ½ (‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) / |b|

with ŷ_ui = e_u · e_i on final embeddings and the L2 term on the batch's layer-0 rows (as the
official LightGCN code), Adam, negatives from :mod:`hybrid.graph.samplers`, early stopping on Recall@20
of a validation set carved from the training data (never the test set), and a progress bar.

The triples of a whole epoch are sampled in a few vectorised calls before it starts. Each step
propagates once, for the rows of its users, positives and negative candidates only
(:meth:`BPRModel.batch_embeddings`); hard negatives are scored with that same step's embeddings,
so they cost no extra pass. The loss is read back once an epoch (no per-step device sync).

Under a distributed launch (a process group of more than one rank) each rank trains on its shard
of every epoch with gradients averaged over ranks, and only rank 0 validates; see
:mod:`hybrid.models.distributed`. A single process takes none of that path.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from hybrid.data.interactions import Interactions
from hybrid.graph.samplers import NegativeSampler, SamplerKind
from hybrid.models import distributed
from hybrid.models.bpr import VALID_KEYS, BPRModel, validation_metrics
from hybrid.models.distributed import World

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Training settings shared by every BPR model (model configs extend this)."""

    dim: int = 64  # layer-0 embedding size
    lr: float = 1e-3  # Adam learning rate
    # constant, or cosine: annealed from lr to 0 over `epochs` (high lr early, settled at the end).
    lr_schedule: Literal["constant", "cosine"] = "constant"
    reg: float = 1e-4  # λ of the L2 term on the batch's layer-0 embeddings
    batch_size: int = 2048  # BPR triples per step (per rank: W data-parallel ranks step on W x this)
    epochs: int = 100  # upper bound; early stopping may end sooner
    # Negatives: uniform | hard (best of hard_pool uniform draws) | curriculum (uniform -> hard).
    sampler: SamplerKind = "uniform"
    hard_pool: int = 10
    curriculum_warmup: int = 10  # epochs for the hard share to rise linearly from 0 to 1
    # Early stopping on validation Recall@20, checked every eval_every epochs; stop after
    # `patience` checks without improvement and keep the best. Off when there is no validation set.
    eval_every: int = 5
    patience: int = 3
    max_minutes: float | None = None  # wall-clock budget for training; None: no limit
    seed: int | None = None  # None: the experiment seed (FitData.seed)
    # Users the model never trained on but who name items: the mean of those items' vectors, then
    # this many Adam steps of BPR on the user's vector alone (0: the mean alone; see hybrid.models.fold_in).
    fold_in_steps: int = 25
    fold_in_lr: float = 0.05
    show_progress: bool | None = None  # None: show when logging is at INFO or lower

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        positive = {"dim": self.dim, "lr": self.lr, "batch_size": self.batch_size, "epochs": self.epochs,
                    "eval_every": self.eval_every, "patience": self.patience}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.fold_in_steps < 0 or not self.fold_in_lr > 0:
            raise ValueError(f"fold_in_steps must be >= 0 and fold_in_lr > 0, got {self.fold_in_steps!r}, {self.fold_in_lr!r}")
        if self.reg < 0:
            raise ValueError(f"reg must be >= 0, got {self.reg!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes!r}")


@dataclass
class TrainResult:
    """What :func:`fit_bpr` learnt about the run.

    Attributes:
        history: one record per epoch: epoch (1-based), loss, seconds, and valid_recall@20 /
            valid_ndcg@20 on the epochs that were evaluated.
        best_epoch: the epoch whose weights were kept (the last one without early stopping).
        stopped: why training ended: "epochs", "early_stopping" or "time_budget".
    """

    history: list[dict[str, float]]
    best_epoch: int
    stopped: str


def fit_bpr(
    model: BPRModel,
    train: Interactions,
    config: TrainConfig,
    *,
    valid: Interactions | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[dict[str, Any], BPRModel], None] | None = None,
) -> TrainResult:
    """Train ``model`` (already on ``device``) with BPR; restores the best validated weights.

    Args:
        model: a :class:`BPRModel` whose parameters live on ``device``.
        train: training interactions; the sampler never offers these as negatives.
        config: training settings.
        valid: held-out interactions from the training period for early stopping, or None.
        device: where sampling and training run.
        seed: seeds the sampler (initialise the model's weights before calling).
        on_epoch: called with each epoch's record and the model (e.g. for a benchmark's curve);
            it may add keys to the record.

    With a process group of more than one rank initialised (a distributed launch), every rank must
    call this with the same arguments: each trains on its shard of every epoch, gradients are
    averaged over ranks, and rank 0's validation decides for all (:mod:`hybrid.models.distributed`).

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    config.validate()
    device = torch.device(device)
    world = distributed.current()
    if world is not None:
        distributed.broadcast_parameters(model)
    sampler, optimizer, schedule = _training_parts(model, train, config, device, seed)
    train_csr = train.matrix()
    valid_csr = None if valid is None or len(valid) == 0 else valid.matrix()
    show = config.show_progress if config.show_progress is not None else logger.isEnabledFor(logging.INFO)
    show = show and (world is None or world.is_main)
    history: list[dict[str, float]] = []
    best, stopped = _Best(), "epochs"
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=f"{type(model).__name__} epochs", disable=not show, leave=False)
    for epoch in bar:
        record = _trained_epoch(model, sampler, optimizer, schedule, epoch, len(train), config, world, device)
        if valid_csr is not None and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
            model.eval()
            record.update(_validated(model, train_csr, valid_csr, world, device))
            best.update(record, epoch, model)
        if on_epoch is not None:
            on_epoch(record, model)
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k in ("loss", "valid_recall@20")})
        logger.debug("%s epoch %s", type(model).__name__, record)
        if (reason := _stop_reason(best, started, config, world, device)) is not None:
            stopped = reason
            break
    bar.close()
    return _finished(model, history, best, stopped, started)


def _training_parts(model: BPRModel, train: Interactions, config: TrainConfig, device: torch.device,
                    seed: int) -> tuple[NegativeSampler, torch.optim.Optimizer, Any]:
    """The seeded negative sampler, the optimizer and the learning-rate schedule (None: constant)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    sampler = NegativeSampler(
        train, config.sampler, config.hard_pool, config.curriculum_warmup, device=device, generator=generator
    )
    optimizer = make_optimizer(model, config.lr, device)
    schedule = None
    if config.lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return sampler, optimizer, schedule


@dataclass
class _Best:
    """The best validated epoch so far, its weights, and the validations since it."""

    recall: float = -math.inf
    epoch: int = 0
    state: dict[str, Any] | None = None
    checks_without_gain: int = 0

    def update(self, record: dict[str, Any], epoch: int, model: BPRModel) -> None:
        if record["valid_recall@20"] > self.recall:
            self.recall, self.epoch = record["valid_recall@20"], epoch + 1
            self.state = copy.deepcopy(model.state_dict())
            self.checks_without_gain = 0
        else:
            self.checks_without_gain += 1


def _trained_epoch(model: BPRModel, sampler: NegativeSampler, optimizer: torch.optim.Optimizer, schedule: Any,
                   epoch: int, n_triples: int, config: TrainConfig, world: World | None,
                   device: torch.device) -> dict[str, Any]:
    """One epoch of :func:`train_epoch` (its loss averaged over ranks) as the history's record; then
    the learning-rate ``schedule`` (None: constant) steps."""
    model.train()
    tick = time.perf_counter()
    loss = train_epoch(model, sampler, optimizer, epoch, n_triples, config, world)
    if world is not None:
        loss = distributed.mean_over_ranks(loss, world, device)
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"BPR loss became {loss} in epoch {epoch + 1} of {type(model).__name__}; lower lr "
            f"(now {config.lr}) or check the inputs for NaN/inf"
        )
    record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - tick}
    if schedule is not None:
        schedule.step()
    return record


def _validated(model: BPRModel, train_csr: sp.csr_matrix, valid_csr: sp.csr_matrix, world: World | None,
               device: torch.device) -> dict[str, float]:
    """:func:`validation_metrics`; under a distributed launch rank 0 validates, every rank gets its numbers."""
    if world is None:
        return validation_metrics(model, train_csr, valid_csr)
    return distributed.computed_on_main(lambda: validation_metrics(model, train_csr, valid_csr), VALID_KEYS, device)


def _stop_reason(best: _Best, started: float, config: TrainConfig, world: World | None,
                 device: torch.device) -> str | None:
    """"early_stopping" or "time_budget" where training should end after this epoch, else None."""
    if best.checks_without_gain >= config.patience:
        return "early_stopping"
    if config.max_minutes is not None:
        over = time.perf_counter() - started > 60 * config.max_minutes
        if world is not None:  # rank 0's clock decides, or the ranks could part ways
            over = bool(distributed.from_main([float(over)], device)[0])
        if over:
            return "time_budget"
    return None


def _finished(model: BPRModel, history: list[dict[str, float]], best: _Best, stopped: str,
              started: float) -> TrainResult:
    """Restore the best validated weights (the last ones without validation) and log the run."""
    best_epoch = best.epoch
    if best.state is None:
        best_epoch = len(history)
    else:
        model.load_state_dict(best.state)
    model.eval()
    logger.info(
        "%s: %d epochs in %.1f s (%s); kept epoch %d%s", type(model).__name__, len(history),
        time.perf_counter() - started, stopped, best_epoch,
        "" if best.state is None else f", valid recall@20 {best.recall:.4f}",
    )
    return TrainResult(history, best_epoch, stopped)


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused kernel on CPU and CUDA (one pass over the tables instead of one per step of the update)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


def train_epoch(
    model: BPRModel,
    sampler: NegativeSampler,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    n_triples: int,
    config: TrainConfig,
    world: World | None = None,
) -> float:
    """One pass of ``n_triples`` BPR triples; returns the mean loss (one device sync per epoch).

    With a ``world`` of several ranks: this rank's shard of the epoch, gradients averaged over the
    ranks at every step, the mean loss of the shard (:mod:`hybrid.models.distributed`).
    """
    if world is None:
        sample = sampler.sample_epoch(n_triples, epoch)
    else:
        full = sampler.sample_epoch(distributed.epoch_triples(n_triples, world), epoch)
        sample = distributed.take_shard(full, world)
    hard_any = sampler.hard_share(epoch) > 0
    total = torch.zeros((), device=sample.users.device)
    for start in range(0, len(sample), config.batch_size):
        stop = start + config.batch_size
        users, positives = sample.users[start:stop], sample.positives[start:stop]
        candidates = sample.candidates[start:stop]
        users0, items0 = model.layer0()
        m = candidates.shape[1]
        u, rows = model.batch_embeddings(users0, items0, users, torch.cat([positives, candidates.reshape(-1)]))
        pos_emb, cand_emb = rows[: len(users)], rows[len(users) :].view(len(users), m, -1)
        pick = torch.zeros(len(users), dtype=torch.int64, device=users.device)
        if hard_any:
            with torch.no_grad():
                pick = sampler.select(sample.hard[start:stop], (u.unsqueeze(1) * cand_emb).sum(-1))
        negatives = candidates.gather(1, pick.unsqueeze(1)).squeeze(1)
        neg_emb = cand_emb.gather(1, pick.view(-1, 1, 1).expand(-1, 1, cand_emb.shape[2])).squeeze(1)
        loss = model.recommendation_loss((u * pos_emb).sum(-1), (u * neg_emb).sum(-1))
        extra = model.auxiliary_loss(u, pos_emb, neg_emb, positives, negatives)
        if extra is not None:
            loss = loss + extra
        if config.reg:
            loss = loss + config.reg * model.regularization(users0, items0, users, positives, negatives)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world is not None:
            distributed.average_gradients(model, world)
        optimizer.step()
        total += loss.detach() * len(users)
    return float(total) / len(sample)
