"""A validation split that looks like the cold start it prepares for.

The evaluation's validation set (each user's last training interaction) holds only warm items, so
anything chosen on it learns what new items *cost* and never what they *gain*. This module carves
a second split out of the training data alone, shaped like the cold start to come:

``by="time"`` (new items arrive over time; the default where there are timestamps): the training
and validation interactions are cut at a time T' so that the last ``share`` of them come after
it; those are the validation positives, the items first seen after T' are the pseudo-new ones,
and everything before T' is the fit graph: the test period rehearsed inside the training period.

``by="random"`` (a random share of items is new, as in a cold-item split):
    pseudo-new items   a seeded ``share`` of the warm items, removed from the graph with all
                       their interactions, which become validation positives (as cold test
                       items are);
    warm positives     the given validation interactions on the other items (or, with none
                       given, each user's last remaining interaction);
    fit graph          everything else.

Nothing of the test split is touched: the input is the training (and validation) data only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from hybrid.data.interactions import Interactions, merged

logger = logging.getLogger(__name__)

NewItemsBy = Literal["time", "random"]
# A time rehearsal falls back to random with fewer validation interactions on new items than
# MIN_NEW_POSITIVES, or fewer users active after the cut (with history before it) than
# MIN_TIME_USER_SHARE of the users with history: the gate is fitted per user, and a burst of a few late users (MovieLens' rating
# sessions) would fit it on a handful of people.
MIN_NEW_POSITIVES = 20
MIN_TIME_USER_SHARE = 0.2
MIN_TIME_USERS = 50
MIN_NEW_ITEM_SHARE = 0.05  # fewer late arrivals than this share of the warm items: add random ones


@dataclass
class ColdValidation:
    """The carved split (one id universe with the input).

    Attributes:
        fit: interactions the validation-time models are fitted on.
        positives: CSR [n_users, n_items] validation positives (pseudo-new and warm).
        pseudo_new: bool [n_items] items removed from ``fit`` (cold at validation time).
        by: how the pseudo-new items were made ("time", or "random", also where time fell back).
        new_weight: the weight of pseudo-new items' positives that gives them, in the gate's
            objective, the share of interactions new items take in the data's own latest period
            (:func:`natural_new_weight`); 1 where the rehearsal has that share already (by time)
            or nothing tells it (no timestamps).
    """

    fit: Interactions
    positives: sp.csr_matrix
    pseudo_new: np.ndarray
    by: NewItemsBy = "random"
    new_weight: float = 1.0


def natural_new_weight(timed: ColdValidation, rehearsal: ColdValidation) -> float:
    """Odds ratio that reweights ``rehearsal``'s pseudo-new positives to the share of positives
    that items first seen late take in ``timed`` (the time rehearsal of the same data).

    Why: a random rehearsal holds *every* interaction of a fifth of the items as positives against
    one warm positive per user, so new items take most of its positives; a gate fitted on that puts
    new items first whatever the data says, which wins a random cold-item test only because that
    test is built the same way. The data's own latest period says how much of what comes next
    goes to new items; the rehearsal is weighted to that share (at least one positive's worth).
    """
    late = max(timed.positives.nnz, 1)
    natural = max(timed.positives[:, timed.pseudo_new].nnz, 1) / late
    carved = rehearsal.positives[:, rehearsal.pseudo_new].nnz / max(rehearsal.positives.nnz, 1)
    if not 0 < carved < 1 or natural >= 1:
        return 1.0
    return float((natural / (1 - natural)) / (carved / (1 - carved)))


def subset(data: Interactions, keep: np.ndarray) -> Interactions:
    """The interactions where bool ``keep`` [n] is True, in the same id universe."""
    return Interactions(
        data.user_ids, data.item_ids, data.users[keep], data.items[keep], data.weights[keep],
        None if data.timestamps is None else data.timestamps[keep],
    )


def choose_pseudo_new(data: Interactions, share: float, seed: int) -> np.ndarray:
    """bool [n_items]: a seeded random ``share`` of the warm items."""
    if not 0 < share < 1:
        raise ValueError(f"valid_new_share must be in (0, 1), got {share!r}")
    warm = np.flatnonzero(data.item_counts() > 0)
    n_new = round(share * len(warm))
    chosen = np.zeros(data.n_items, bool)
    if 0 < n_new < len(warm):
        chosen[np.random.default_rng(seed).choice(warm, n_new, replace=False)] = True
    return chosen


def temporal_validation(train: Interactions, valid: Interactions | None, share: float) -> ColdValidation:
    """The last ``share`` of the interactions by time are the positives (see the module docstring)."""
    if not 0 < share < 1:
        raise ValueError(f"valid_new_share must be in (0, 1), got {share!r}")
    data = merged(train, valid)
    if data.timestamps is None:
        raise ValueError("valid_new_by='time' needs timestamps; this data has none (use 'random')")
    cut = np.quantile(data.timestamps, 1 - share, method="higher")
    after = data.timestamps >= cut
    if after.all() or not after.any():
        raise ValueError(f"valid_new_by='time': every interaction falls on one side of the cut {cut}; use 'random'")
    fit = subset(data, ~after)
    positives = sp.csr_matrix((np.ones(int(after.sum()), np.float32), (data.users[after], data.items[after])),
                              shape=(data.n_users, data.n_items))
    positives = ((positives - positives.multiply(fit.matrix())) > 0).astype(np.float32).tocsr()  # re-interactions are known
    pseudo_new = (fit.item_counts() == 0) & (np.asarray(positives.sum(0)).ravel() > 0)
    logger.info(
        "cold validation (time): cut at %s; %d interactions to fit on, %d positives after, %d items first seen after",
        cut, len(fit), positives.nnz, int(pseudo_new.sum()),
    )
    return ColdValidation(fit, positives, pseudo_new, "time")


def with_random_new(timed: ColdValidation, share: float, seed: int) -> ColdValidation:
    """``timed``, and where the data's own late arrivals are fewer than :data:`MIN_NEW_ITEM_SHARE`
    of its warm items, a seeded ``share`` of the fit graph's warm items made pseudo-new as well
    (removed from the fit graph, the late users' interactions with them positives), weighted back to the share of
    positives that late arrivals take (:func:`natural_new_weight`).

    Why: a few dozen late arrivals are too few to learn how text ranks new items, while the late
    users are what the rest of the gate (recency, warm users' next items) must be fitted on."""
    warm = int((timed.fit.item_counts() > 0).sum())
    if timed.pseudo_new.sum() >= MIN_NEW_ITEM_SHARE * warm:
        return timed
    pseudo = choose_pseudo_new(timed.fit, share, seed)
    on_new = pseudo[timed.fit.items]
    fit = subset(timed.fit, ~on_new)
    # positives of the late users only: the gate is fitted per user, and a user whose only positives
    # were new items would teach "new first" whatever their weight
    late = (timed.positives.getnnz(axis=1) > 0)[timed.fit.users]
    rows = on_new & late
    carved = sp.csr_matrix((np.ones(int(rows.sum()), np.float32), (timed.fit.users[rows], timed.fit.items[rows])),
                           shape=timed.positives.shape)
    positives = ((timed.positives + carved) > 0).astype(np.float32).tocsr()
    rehearsal = ColdValidation(fit, positives, timed.pseudo_new | pseudo, "time")
    rehearsal.new_weight = natural_new_weight(timed, rehearsal)
    logger.info("cold validation (time): %d items first seen after the cut, under %.0f%% of %d warm items; %d warm "
                "items made pseudo-new as well, new items' positives weighted %.4g", int(timed.pseudo_new.sum()),
                100 * MIN_NEW_ITEM_SHARE, warm, int(pseudo.sum()), rehearsal.new_weight)
    return rehearsal


def earlier_rehearsals(train: Interactions, valid: Interactions | None, share: float, seed: int,
                       ends: tuple[float, ...]) -> list[ColdValidation]:
    """Time rehearsals (:func:`temporal_validation`, :func:`with_random_new`) of the training
    period truncated at each of ``ends`` (quantiles of its timestamps); none without timestamps,
    and none for an end whose rehearsal has no user with history and a later interaction.

    Why: one cut of a MovieLens-like period holds a few dozen late users with history, too few to
    fit a gate on by time, and a random rehearsal does not show what a later quarter holds; earlier
    cuts add their late users (each sees only its own past), pooled into one fit."""
    data = merged(train, valid)
    if data.timestamps is None or not len(data):
        return []
    out, limits = [], set()
    for end in ends:
        limit = float(np.quantile(data.timestamps, end))
        if limit in limits:  # coarse timestamps: two quantiles, one period
            continue
        limits.add(limit)
        part = subset(data, data.timestamps < limit)
        try:
            cut = with_random_new(temporal_validation(part, None, share), share, seed)
        except ValueError as error:  # every interaction on one side of the cut
            logger.info("cold validation: no earlier rehearsal ending at the %.0f%% time quantile (%s)", 100 * end, error)
            continue
        if ((cut.positives.getnnz(axis=1) > 0) & (cut.fit.user_counts() > 0)).any():
            out.append(cut)
        else:
            logger.info("cold validation: the earlier rehearsal ending at the %.0f%% time quantile has no user with "
                        "both history and a later interaction; not used", 100 * end)
    return out


def _last_per_user(data: Interactions, seed: int) -> np.ndarray:
    """bool [nnz]: each user's last interaction (by time, else seeded random), for users with ≥ 2."""
    tie = np.random.default_rng(seed).random(len(data))
    time = data.timestamps if data.timestamps is not None else np.zeros(len(data), np.int64)
    order = np.lexsort((tie, time, data.users))
    last = np.zeros(len(data), bool)
    ends = np.r_[np.flatnonzero(np.diff(data.users[order])), len(order) - 1] if len(order) else []
    sizes = np.bincount(data.users, minlength=data.n_users)
    for end in ends:
        row = order[end]
        if sizes[data.users[row]] >= 2:
            last[row] = True
    return last


def cold_validation(
    train: Interactions, valid: Interactions | None, share: float, by: NewItemsBy, seed: int,
) -> ColdValidation:
    """Carve pseudo-new items (and warm positives) out of ``train`` / ``valid``; see the module docstring."""
    timed = None
    if by == "time":
        split = timed = temporal_validation(train, valid, share)
        new_positives = split.positives[:, split.pseudo_new].nnz
        # users the gate can learn from: active after the cut, with history before it
        late_users = int(((split.positives.getnnz(axis=1) > 0) & (split.fit.user_counts() > 0)).sum())
        users = int((merged(train, valid).user_counts() > 0).sum())
        if new_positives >= MIN_NEW_POSITIVES and late_users >= min(MIN_TIME_USER_SHARE * users, MIN_TIME_USERS):
            return with_random_new(split, share, seed)
        logger.info(
            "cold validation: the last %.0f%% of the time holds %d interactions on items first seen there (at least %d "
            "wanted) from %d of %d users (at least %.0f%% wanted), too few to fit the gate on; using a random %.0f%% "
            "of items instead", 100 * share, new_positives, MIN_NEW_POSITIVES, late_users, users,
            100 * MIN_TIME_USER_SHARE, 100 * share,
        )
    elif by != "random":
        raise ValueError(f"valid_new_by must be 'time' or 'random', got {by!r}")
    pseudo_new = choose_pseudo_new(train, share, seed)
    on_new = pseudo_new[train.items]
    rest = subset(train, ~on_new)
    shape = (train.n_users, train.n_items)
    new_pos = sp.csr_matrix((np.ones(int(on_new.sum()), np.float32), (train.users[on_new], train.items[on_new])),
                            shape=shape)
    if valid is not None and len(valid):
        warm_pos = valid.matrix()
        fit = rest
    else:
        last = _last_per_user(rest, seed)
        warm_pos = sp.csr_matrix((np.ones(int(last.sum()), np.float32), (rest.users[last], rest.items[last])),
                                 shape=shape)
        fit = subset(rest, ~last)
    positives = ((new_pos + warm_pos) > 0).astype(np.float32).tocsr()
    rehearsal = ColdValidation(fit, positives, pseudo_new)
    if timed is not None:
        rehearsal.new_weight = natural_new_weight(timed, rehearsal)
    logger.info(
        "cold validation (random): %d pseudo-new items (%.0f%% of warm) with %d interactions, %d warm positives, "
        "%d interactions left to fit on; new items' positives weighted %.4g", int(pseudo_new.sum()), 100 * share,
        int(on_new.sum()), warm_pos.nnz, len(fit), rehearsal.new_weight,
    )
    return rehearsal


def earliest(data: Interactions, users: np.ndarray) -> list[np.ndarray]:
    """Each of ``users``' items in time order (interaction order where there are no timestamps)."""
    order = np.lexsort((np.arange(len(data.users)) if data.timestamps is None else data.timestamps, data.users))
    sorted_users, sorted_items = data.users[order], data.items[order]
    starts = np.searchsorted(sorted_users, users)
    ends = np.searchsorted(sorted_users, users, side="right")
    return [sorted_items[s:e] for s, e in zip(starts, ends, strict=True)]


def first_items(items: list[np.ndarray], reveal: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary CSR [len(items), n_items] of each row's first ``reveal[r]`` items."""
    rows = np.repeat(np.arange(len(items)), reveal)
    cols = np.concatenate([i[:r] for i, r in zip(items, reveal, strict=True)] or [np.zeros(0, np.int64)])
    return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols.astype(np.int64))), shape=(len(items), n_items))
