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

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hybrid.data.interactions import Interactions
from hybrid.evaluation.metrics import hit_matrix, metrics_from_hits
from hybrid.graph.samplers import NegativeSampler, SamplerKind
from hybrid.models import distributed
from hybrid.models.distributed import World
from hybrid.retrieval.ranking import mask_history

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


class BPRModel(nn.Module):
    """An embedding model the BPR trainer can fit.

    Subclasses set ``n_users`` / ``n_items`` and implement :meth:`layer0`; graph models also
    override :meth:`propagate`. The hybrid model replaces the item half of :meth:`layer0` with a
    projection of text features plus an id embedding and inherits the rest.
    """

    n_users: int
    n_items: int

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-0 embeddings: users [n_users, d], items [n_items, d]."""
        raise NotImplementedError

    def propagate(self, users0: torch.Tensor, items0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings from layer-0 ones: users [n_users, d'], items [n_items, d']; identity by default."""
        return users0, items0

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings (``get_embedding`` in PyG terms): users [n_users, d'], items [n_items, d']."""
        return self.propagate(*self.layer0())

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ŷ_ui = e_u · e_i of pairs (one propagation).

        Args:
            users: int64 [b].
            items: int64 [b] (one item per user) or [b, m] (m items per user).

        Returns:
            float, the shape of ``items``.
        """
        user_emb, item_emb = self.embeddings()
        u = user_emb[users] if items.dim() == 1 else user_emb[users].unsqueeze(1)
        return (u * item_emb[items]).sum(-1)

    def regularization(
        self,
        users0: torch.Tensor,
        items0: torch.Tensor,
        users: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> torch.Tensor:
        """½ (‖e⁰_u‖² + ‖e⁰_i‖² + ‖e⁰_j‖²) summed over the batch, divided by its size [scalar].

        Computed as per-row counts times full-table squared norms: the same value and gradient
        as gathering the batch's rows, without a gather whose backward dominates a CPU step.
        """
        user_counts = torch.bincount(users, minlength=len(users0)).to(users0.dtype)
        item_counts = torch.bincount(torch.cat([positives, negatives]), minlength=len(items0)).to(items0.dtype)
        squares = (user_counts * users0.square().sum(1)).sum() + (item_counts * items0.square().sum(1)).sum()
        return 0.5 * squares / len(users)

    def batch_embeddings(
        self, users0: torch.Tensor, items0: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of a batch's rows only: users [b, d'] and items [k, d'].

        What a training step needs. By default the full :meth:`propagate` then a gather; a model
        whose propagation can stop at the rows it is asked for (LightGCN) overrides this.

        Args:
            users0 / items0: :meth:`layer0` of this step.
            users: int64 [b]; items: int64 [k] (repeats allowed).
        """
        user_emb, item_emb = self.propagate(users0, items0)
        return user_emb.index_select(0, users), item_emb.index_select(0, items)  # deterministic backward

    def auxiliary_loss(
        self,
        users: torch.Tensor,
        pos_emb: torch.Tensor,
        neg_emb: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> torch.Tensor | None:
        """An extra loss term of the batch, added to BPR (the hybrid trains its content path here).

        Args:
            users: [b, d'] final embeddings of the batch's users.
            pos_emb / neg_emb: [b, d'] final embeddings of the batch's positive / negative items.
            positives / negatives: int64 [b] the batch's items.

        Returns:
            a scalar, or None (the default) for no extra term.
        """
        return None

    @staticmethod
    def recommendation_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        """Mean BPR loss −log σ(ŷ_ui − ŷ_uj) over a batch [scalar]."""
        return F.softplus(neg_scores - pos_scores).mean()


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


def heldout_metrics(
    model: BPRModel, known: sp.csr_matrix, heldout: sp.csr_matrix, k: int = 20, batch_size: int = 4096
) -> dict[str, float]:
    """Recall@k and NDCG@k of ``model`` on held-out items, known items masked, batched on the device.

    Every item is ranked for every user with a held-out item; the users x items score matrix is
    never built whole (``batch_size`` users at a time).

    Args:
        model: in eval mode.
        known: CSR [n_users, n_items] items to mask (training interactions).
        heldout: CSR [n_users, n_items] items to find (validation or test interactions).
        k: cut-off.
        batch_size: users scored at once.

    Returns:
        ``{"recall@k": ..., "ndcg@k": ...}`` averaged over users with a held-out item.
    """
    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    cut = min(k, heldout.shape[1])  # fewer items than k: every item is ranked
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
        hits, n_rel = [], []
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = user_emb[torch.as_tensor(batch, device=user_emb.device)] @ item_emb.T
            top = torch.topk(mask_history(scores, known[batch]), cut, dim=1).indices
            hits.append(hit_matrix(top, heldout[batch]))
            n_rel.append(torch.as_tensor(np.diff(heldout[batch].indptr), device=top.device))
    out = metrics_from_hits(torch.cat(hits), torch.cat(n_rel), [cut])
    return {f"recall@{k}": out[f"recall@{cut}"], f"ndcg@{k}": out[f"ndcg@{cut}"]}


VALID_KEYS = ("valid_recall@20", "valid_ndcg@20")  # what validation_metrics returns


def validation_metrics(model: BPRModel, train: sp.csr_matrix, valid: sp.csr_matrix) -> dict[str, float]:
    """``valid_recall@20`` and ``valid_ndcg@20``: :func:`heldout_metrics` on the validation set."""
    return {f"valid_{name}": value for name, value in heldout_metrics(model, train, valid).items()}


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
    generator = torch.Generator(device=device).manual_seed(seed)
    sampler = NegativeSampler(
        train, config.sampler, config.hard_pool, config.curriculum_warmup, device=device, generator=generator
    )
    optimizer = make_optimizer(model, config.lr, device)
    schedule = None
    if config.lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    train_csr = train.matrix()
    valid_csr = None if valid is None or len(valid) == 0 else valid.matrix()
    show = config.show_progress if config.show_progress is not None else logger.isEnabledFor(logging.INFO)
    show = show and (world is None or world.is_main)
    history: list[dict[str, float]] = []
    best_recall, best_epoch, best_state = -math.inf, 0, None
    checks_without_gain, stopped = 0, "epochs"
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=f"{type(model).__name__} epochs", disable=not show, leave=False)
    for epoch in bar:
        model.train()
        tick = time.perf_counter()
        loss = train_epoch(model, sampler, optimizer, epoch, len(train), config, world)
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
        last = epoch + 1 == config.epochs
        if valid_csr is not None and ((epoch + 1) % config.eval_every == 0 or last):
            model.eval()
            if world is None:
                record.update(validation_metrics(model, train_csr, valid_csr))
            else:  # rank 0 validates, every rank gets its numbers
                record.update(distributed.computed_on_main(
                    lambda: validation_metrics(model, train_csr, valid_csr), VALID_KEYS, device))
            if record["valid_recall@20"] > best_recall:
                best_recall, best_epoch = record["valid_recall@20"], epoch + 1
                best_state = copy.deepcopy(model.state_dict())
                checks_without_gain = 0
            else:
                checks_without_gain += 1
        if on_epoch is not None:
            on_epoch(record, model)
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k in ("loss", "valid_recall@20")})
        logger.debug("%s epoch %s", type(model).__name__, record)
        if checks_without_gain >= config.patience:
            stopped = "early_stopping"
            break
        if config.max_minutes is not None:
            over = time.perf_counter() - started > 60 * config.max_minutes
            if world is not None:  # rank 0's clock decides, or the ranks could part ways
                over = bool(distributed.from_main([float(over)], device)[0])
            if over:
                stopped = "time_budget"
                break
    bar.close()
    if best_state is None:
        best_epoch = len(history)
    else:
        model.load_state_dict(best_state)
    model.eval()
    logger.info(
        "%s: %d epochs in %.1f s (%s); kept epoch %d%s", type(model).__name__, len(history),
        time.perf_counter() - started, stopped, best_epoch,
        "" if best_state is None else f", valid recall@20 {best_recall:.4f}",
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
