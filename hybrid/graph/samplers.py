"""BPR training triples (user, positive, negative), sampled for a whole epoch at once on the device.

Positives follow the official LightGCN sampler: a user drawn uniformly among users with at least
one training item (and at least one possible negative), then one of their items uniformly. So an
epoch weighs users equally, as the per-user ranking metrics do.

Negatives, chosen by ``kind``:
    uniform     an item drawn uniformly among the user's non-positives that occur in training (collisions with known
                positives are found by binary search over sorted (user, item) keys and redrawn).
    hard        the highest-scoring of ``pool`` uniform non-positives under the current model.
    curriculum  uniform → hard by a schedule (PinSage, Ying et al. 2018): each triple's negative is
                hard with probability ``hard_share(epoch)``, rising linearly from 0 to 1 over
                ``warmup`` epochs.

Sampling is split in two so that hard negatives use the model *of the step*, not of the epoch
start: :meth:`NegativeSampler.sample_epoch` draws users, positives and a pool of uniform candidates
for every triple of the epoch in a few vectorised calls; :meth:`NegativeSampler.select` picks one
negative per triple from its pool, given the model's scores of the pool (computed by the trainer
from the embeddings of the step, so hard negatives cost no extra propagation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hybrid.data.interactions import Interactions

logger = logging.getLogger(__name__)

SamplerKind = Literal["uniform", "hard", "curriculum"]


@dataclass
class EpochSample:
    """Every BPR triple of one epoch, on the device.

    Attributes:
        users: int64 [N] user indices.
        positives: int64 [N] one training item of each user.
        candidates: int64 [N, m] uniform non-positives of each user (m = 1 for ``uniform``).
        hard: bool [N] whether each triple takes the hardest candidate (else candidate 0).
    """

    users: torch.Tensor
    positives: torch.Tensor
    candidates: torch.Tensor
    hard: torch.Tensor

    def __len__(self) -> int:
        return len(self.users)


class NegativeSampler:
    """Draws BPR triples from the training interactions, never a known positive as a negative.

    Args:
        train: training interactions (internal indices, sorted by (user, item)).
        kind: ``uniform``, ``hard`` or ``curriculum`` (see the module docstring).
        pool: m, uniform candidates per triple for ``hard`` and ``curriculum`` (≥ 2).
        warmup: epochs over which ``curriculum`` raises the share of hard negatives from 0 to 1.
        device: where samples are drawn and returned.
        generator: torch generator on ``device``; seeds the draws.
    """

    def __init__(
        self,
        train: Interactions,
        kind: SamplerKind = "uniform",
        pool: int = 10,
        warmup: int = 10,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        if kind not in ("uniform", "hard", "curriculum"):
            raise ValueError(f"sampler must be 'uniform', 'hard' or 'curriculum', got {kind!r}")
        if kind != "uniform" and pool < 2:
            raise ValueError(f"hard_pool must be >= 2 for the {kind!r} sampler, got {pool}")
        if kind == "curriculum" and warmup < 1:
            raise ValueError(f"curriculum_warmup must be >= 1 epoch, got {warmup}")
        if len(train) == 0:
            raise ValueError("train has no interactions; nothing to sample")
        self.kind = kind
        self.pool = pool if kind != "uniform" else 1
        self.warmup = warmup
        self.device = torch.device(device)
        self.generator = generator
        self.n_items = train.n_items
        # Negatives come only from items seen in training: items with no interactions (cold items
        # of the split) are unknown at training time and must not be taught to score low.
        catalogue = np.flatnonzero(train.item_counts() > 0)
        self._catalogue = torch.as_tensor(catalogue, device=self.device)
        counts = train.user_counts()
        indptr = np.concatenate([[0], np.cumsum(counts)])
        sampleable = (counts > 0) & (counts < len(catalogue))
        saturated = int(((counts > 0) & ~sampleable).sum())
        if saturated:
            logger.warning("%d users interacted with every item: they have no negatives and are skipped", saturated)
        if not sampleable.any():
            raise ValueError("no user has both a training item and a possible negative; nothing to sample")
        self._keys = torch.as_tensor(train.users * train.n_items + train.items, device=self.device)
        self._items = torch.as_tensor(train.items, device=self.device)
        self._users = torch.as_tensor(np.flatnonzero(sampleable), device=self.device)
        self._start = torch.as_tensor(indptr[:-1], device=self.device)
        self._count = torch.as_tensor(counts, device=self.device)

    def hard_share(self, epoch: int) -> float:
        """Share of hard negatives at ``epoch`` (0-based): 0 uniform, 1 hard, linear for curriculum."""
        if self.kind == "uniform":
            return 0.0
        if self.kind == "hard":
            return 1.0
        return min(1.0, epoch / self.warmup)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """bool, same shape as ``items``: whether (user, item) is a training interaction.

        Args:
            users: int64 [N] or broadcastable to ``items`` (e.g. [N, 1] against [N, m]).
            items: int64 [N] or [N, m].
        """
        query = users * self.n_items + items
        pos = torch.searchsorted(self._keys, query).clamp_(max=len(self._keys) - 1)
        return self._keys[pos] == query

    def _randint(self, high: int, size: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(high, size, device=self.device, generator=self.generator)

    def uniform_negatives(self, users: torch.Tensor, m: int = 1) -> torch.Tensor:
        """int64 [N, m]: items drawn uniformly among each user's non-positives that have training
        interactions (with replacement).

        Draws all at once, then redraws only the collisions with known positives until none is left.
        """
        users = users.unsqueeze(1).expand(-1, m)
        items = self._catalogue[self._randint(len(self._catalogue), tuple(users.shape))]
        bad = self.is_positive(users, items)
        while bool(bad.any()):
            rows = users[bad]
            redraw = self._catalogue[self._randint(len(self._catalogue), (len(rows),))]
            items[bad] = redraw
            bad[bad.clone()] = self.is_positive(rows, redraw)
        return items

    def sample_epoch(self, n: int, epoch: int) -> EpochSample:
        """Draw ``n`` triples' users, positives and negative candidates for ``epoch`` (0-based)."""
        users = self._users[self._randint(len(self._users), (n,))]
        offsets = (torch.rand(n, device=self.device, generator=self.generator) * self._count[users]).long()
        offsets = torch.minimum(offsets, self._count[users] - 1)
        positives = self._items[self._start[users] + offsets]
        candidates = self.uniform_negatives(users, self.pool)
        share = self.hard_share(epoch)
        if share in (0.0, 1.0):
            hard = torch.full((n,), share == 1.0, dtype=torch.bool, device=self.device)
        else:
            hard = torch.rand(n, device=self.device, generator=self.generator) < share
        return EpochSample(users, positives, candidates, hard)

    @staticmethod
    def select(hard: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Which candidate each triple takes: its top-scoring one where ``hard``, else candidate 0.

        Args:
            hard: bool [b].
            scores: float [b, m] the current model's scores of the candidates.

        Returns:
            int64 [b] column into the candidates.
        """
        return torch.where(hard, scores.argmax(1), 0)
