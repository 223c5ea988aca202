"""Exploration slots: a few places of a list go to new or sparse items, so they can earn history.

A ranking that is best today starves tomorrow's catalogue: an item never shown never gets the
interactions that let the graph half rank it. ``ExploreConfig(slots=m)`` gives up to m of the k
places to *eligible* items (fewer than ``max_count`` interactions, never a seen item, never outside
``items=``), chosen by the hybrid's own score of them plus an uncertainty:

    σ(u, i) = s_u / sqrt(1 + n_i)

s_u is the spread (standard deviation) of user u's scores over the eligible items, the width of
what the model believes about sparse items for this user; n_i is the item's interaction count, so
the width shrinks as an item earns history, like a posterior's with n observations. Policies:

- ``ucb``: the m highest s + ``width`` · σ (deterministic);
- ``thompson``: the m highest s + ``width`` · σ · z, z ~ N(0, 1) drawn per user and item (seeded);
- ``epsilon``: m eligible items drawn uniformly (the score ignored), the classic baseline.

The other k − m places are the plain ranking's first k − m; an eligible item that ranks there on
its own merit is not an exploratory slot. Where fewer than m eligible items remain, the plain
ranking fills the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import SPARSE_BELOW
from hybrid.models.base import Recommender

POLICIES = ("thompson", "ucb", "epsilon")


@dataclass(frozen=True)
class ExploreConfig:
    """Settings of :func:`explore`; checked when built.

    Attributes:
        slots: places of each list that may go to eligible items (0: off).
        policy: "thompson", "ucb" or "epsilon" (see the module docstring).
        max_count: an item with fewer interactions is eligible; default the count buckets' first
            warm edge (5), the gate's "new or sparse" items.
        width: the multiple of σ (UCB's bonus, Thompson's noise); 0 makes both greedy on the score.
        seed: Thompson's and epsilon's random draws (each call of ``explore`` draws afresh from it
            and the call's ``step``).
    """

    slots: int = 1
    policy: Literal["thompson", "ucb", "epsilon"] = "thompson"
    max_count: int = SPARSE_BELOW
    width: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.slots, int) or self.slots < 0:
            raise ValueError(f"explore.slots must be an integer >= 0, got {self.slots!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"explore.policy must be one of {list(POLICIES)}, got {self.policy!r}")
        if not isinstance(self.max_count, int) or self.max_count < 1:
            raise ValueError(f"explore.max_count must be an integer >= 1, got {self.max_count!r}")
        if not self.width >= 0:
            raise ValueError(f"explore.width must be >= 0, got {self.width!r}")


def eligible_items(counts: np.ndarray, config: ExploreConfig, allowed: np.ndarray | None = None) -> np.ndarray:
    """int64 [e] the items exploration may show: fewer than ``max_count`` interactions, within ``allowed``."""
    keep = np.asarray(counts) < config.max_count
    if allowed is not None:
        keep &= allowed
    return np.flatnonzero(keep)


def explore(
    top: np.ndarray,
    top_scores: np.ndarray,
    eligible: np.ndarray,
    eligible_scores: torch.Tensor,
    counts: np.ndarray,
    config: ExploreConfig,
    step: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give up to ``config.slots`` places of each ranked list to eligible items.

    Args:
        top: int64 [b, k] the plain ranking, best first; top_scores float32 [b, k] its scores.
        eligible: int64 [e] the eligible items (:func:`eligible_items`).
        eligible_scores: float32 [b, e] each user's score of them, -inf where the user may not be
            shown one (seen).
        counts: int64 [n_items] interaction counts (the uncertainty's n_i).
        step: mixed into the seed, so successive calls (a replay's days) draw differently.

    Returns:
        items int64 [b, k], scores float32 [b, k] (each slot's own score) and explore bool [b, k]
        (True: an exploratory slot; those are the list's last places).
    """
    b, k = top.shape
    flags = np.zeros((b, k), bool)
    m = min(config.slots, k)
    if m == 0 or len(eligible) == 0:
        return top, top_scores, flags
    scores = eligible_scores.detach().float().cpu().clone()
    keep = k - m
    # Eligible items already in the plain list's first k - m places are not explored again.
    position = {int(item): j for j, item in enumerate(eligible)}
    for row in range(b):
        for item in top[row, :keep]:
            j = position.get(int(item))
            if j is not None:
                scores[row, j] = -torch.inf
    value = policy_values(scores, counts[eligible], config, step)
    picked_value, picked = torch.topk(value, min(m, value.shape[1]), dim=1)
    items, out_scores = top.copy(), top_scores.copy()
    for row in range(b):
        chosen = [int(eligible[j]) for j, v in zip(picked[row].tolist(), picked_value[row].tolist(), strict=True)
                  if np.isfinite(v)]
        rest = [int(i) for i in top[row, keep:] if int(i) not in chosen]  # the plain list refills
        fill = rest[: m - len(chosen)]
        tail = fill + chosen
        items[row, keep:] = tail
        by_item = dict(zip(top[row].tolist(), top_scores[row].tolist(), strict=True))
        own = dict(zip(eligible[picked[row].numpy()].tolist(), scores[row, picked[row]].tolist(), strict=True))
        out_scores[row, keep:] = [by_item.get(i, own.get(i)) for i in tail]
        flags[row, keep + len(fill):] = True
    return items, out_scores, flags


def policy_values(scores: torch.Tensor, counts: np.ndarray, config: ExploreConfig, step: int) -> torch.Tensor:
    """float32 [b, e] what each policy ranks the eligible items by (-inf stays -inf: not showable)."""
    valid = torch.isfinite(scores)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    if config.policy == "epsilon":
        value = torch.rand(scores.shape, generator=generator)
    else:
        finite = torch.where(valid, scores, torch.nan)
        mean = torch.nanmean(finite, dim=1, keepdim=True)
        spread = torch.sqrt(torch.nanmean((finite - mean) ** 2, dim=1, keepdim=True)).nan_to_num(0.0)
        sigma = spread / torch.sqrt(1.0 + torch.as_tensor(counts, dtype=torch.float32))
        noise = torch.randn(scores.shape, generator=generator) if config.policy == "thompson" else 1.0
        value = scores + config.width * sigma * noise
    return torch.where(valid, value, -torch.inf)


def eligible_scores(model: Recommender, users: np.ndarray, history: sp.csr_matrix,
                    eligible: np.ndarray, filter_seen: bool, batch_size: int = 1024) -> torch.Tensor:
    """float32 [b, e] ``model.score_columns`` of the eligible items for ``users`` (rows of the CSR
    ``history`` [n_users, n_items]), in batches; -inf where ``filter_seen`` and the user has the item."""
    parts = []
    with torch.inference_mode():
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            rows = history[batch]
            part = model.score_columns(batch, rows, eligible).float().cpu()
            if filter_seen:
                seen = torch.as_tensor(rows[:, eligible].toarray() > 0)
                part = part.masked_fill(seen, -torch.inf)
            parts.append(part)
    return torch.cat(parts) if parts else torch.zeros(0, len(eligible))
