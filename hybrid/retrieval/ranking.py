"""Batched top-K ranking with known items masked; never builds the full users x items matrix."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.interactions import BadInputError
from hybrid.metrics import mask_history
from hybrid.models.base import Recommender

# A batch's score matrix holds at most this many entries (512 MiB of float32): at 10M items a
# batch is 13 users, not ``batch_size``'s 1,024 (40 GB); below 131,072 items ``batch_size`` rules.
MAX_SCORE_ENTRIES = 1 << 27


def user_batch_size(n_items: int, batch_size: int = 1024) -> int:
    """Users handled at once: ``batch_size``, fewer where a batch's [users, n_items] matrix would
    pass ``MAX_SCORE_ENTRIES`` (at least 1)."""
    return max(1, min(batch_size, MAX_SCORE_ENTRIES // max(n_items, 1)))


def check_k(k: int) -> int:
    """``k`` itself when it is a positive integer; otherwise a ``ValueError`` naming it."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise BadInputError(f"k must be a positive integer, got {k!r}")
    return int(k)


def top_k(
    model: Recommender,
    users: np.ndarray,
    history: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
    filter_seen: bool = True,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank items for ``users`` in batches.

    Args:
        model: a fitted model.
        users: int64 [n] internal user indices.
        history: CSR [n_users_total, n_items], each user's known items (by user index).
        k: list length; capped at the number of items.
        batch_size: users scored at once (memory ~ batch_size x n_items floats), fewer where that
            would pass ``MAX_SCORE_ENTRIES``.
        filter_seen: mask history items so they are never recommended.
        candidates: int64 item indices to rank among (e.g. new arrivals); None: every item.

    Returns:
        items int64 [n, k] and scores float32 [n, k], best first.
    """
    allowed = None
    if candidates is not None:
        allowed = np.zeros(history.shape[1], bool)
        allowed[np.asarray(candidates, dtype=np.int64)] = True
    return top_k_masked(model, users, history, k, {"": allowed}, batch_size, filter_seen)[""]


def top_k_masked(
    model: Recommender,
    users: np.ndarray,
    history: sp.csr_matrix,
    k: int,
    item_masks: Mapping[str, np.ndarray | None],
    batch_size: int = 1024,
    filter_seen: bool = True,
    tie_seed: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Several rankings of ``users`` from one scoring pass: each among the items one mask allows.

    Each batch of users is scored once and ranked once per mask, the items a mask leaves out set to
    -inf (as seen items are), so every ranking is the full ranking with the other items removed.

    Args:
        item_masks: name -> bool [n_items], the items that ranking may hold (shared by all users),
            or None for every item.
        tie_seed: break ties between equal scores in a seeded random order rather than by item
            index (an evaluation must: item order often follows popularity, so a model that
            cannot tell items apart would be credited with a popularity ranking); None: by index.
        (the rest as :func:`top_k`.)

    Returns:
        name -> (items int64 [n, k'], scores float32 [n, k']), best first, where k' is ``k``
        capped at the number of allowed items. A row with fewer than k' allowed, unseen items
        ends in entries scored -inf, which are not recommendations.
    """
    users = np.asarray(users, dtype=np.int64)
    excluded, sizes = _exclusions(item_masks, check_k(k), history.shape[1])
    out = {
        name: (np.empty((len(users), size), np.int64), np.empty((len(users), size), np.float32))
        for name, size in sizes.items()
    }
    order = None
    if tie_seed is not None:
        order = torch.randperm(history.shape[1], generator=torch.Generator().manual_seed(tie_seed))
    batch_size = user_batch_size(history.shape[1], batch_size)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        rows = history[batch]
        with torch.inference_mode():
            scores = model.score(batch, rows).float()
            if filter_seen:
                mask_history(scores, rows)
            for name, size in sizes.items():
                if size == 0:
                    continue
                masked = scores
                if excluded[name] is not None:
                    masked = scores.masked_fill(excluded[name].to(scores.device), -torch.inf)
                values, items = ranked(masked, size, order)
                out[name][0][start : start + len(batch)] = items.cpu().numpy()
                out[name][1][start : start + len(batch)] = values.cpu().numpy()
    return out


def _exclusions(item_masks: Mapping[str, np.ndarray | None], k: int, n_items: int,
                ) -> tuple[dict[str, torch.Tensor | None], dict[str, int]]:
    """Per mask name: the bool [n_items] items it leaves out (None: none) and its list length."""
    excluded: dict[str, torch.Tensor | None] = {}
    sizes: dict[str, int] = {}
    for name, mask in item_masks.items():
        if mask is None:
            excluded[name], sizes[name] = None, min(k, n_items)
            continue
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n_items,):
            raise ValueError(f"item mask {name!r} has shape {mask.shape}, expected ({n_items},)")
        excluded[name], sizes[name] = torch.as_tensor(~mask), min(k, int(mask.sum()))
    return excluded, sizes


def ranked(scores: torch.Tensor, size: int, order: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``size`` of each row of ``scores``, ties broken in the item ``order`` given (None: by index).

    A row whose top ``size + 1`` values are all distinct has one ranking whatever the tie-break, so
    only the rows with a tie are ranked again over their columns permuted by ``order``: the result
    is that of permuting every row, at the cost of one ``topk`` for most rows.
    """
    if order is None:
        return torch.topk(scores, size, dim=1)
    values, items = torch.topk(scores, min(size + 1, scores.shape[1]), dim=1)
    tied = (values[:, 1:] == values[:, :-1]).any(1).nonzero().squeeze(1)
    values, items = values[:, :size], items[:, :size]
    if len(tied):
        order = order.to(scores.device)
        tied_values, tied_items = torch.topk(scores[tied][:, order], size, dim=1)
        values[tied], items[tied] = tied_values, order[tied_items]
    return values, items
