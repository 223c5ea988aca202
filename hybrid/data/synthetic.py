"""Synthetic power-law bipartite interaction graphs, for scaling runs past the public data sets.

Real interaction graphs are heavy-tailed on both sides (a few users and items hold a large share of
the edges) and clustered (users mostly interact inside a taste community). A uniform random graph
has neither, so it makes sampled training look cheaper than it is (no hub rows) and recall
meaningless (nothing to learn). :func:`power_law_interactions` plants both:

* popularity: the item of popularity rank r (0-based) is drawn with weight (r + 1)^-a_item, and the
  user of activity rank r gets a degree ∝ (r + 1)^-a_user (Zipf's law; a = 0 is uniform), with ids
  shuffled so that id order says nothing about rank;
* communities: ranks are dealt round-robin into C groups (rank r goes to r mod C), so every
  community holds the same spread of popular and rare items and of active and quiet users; a share
  ``in_community`` of a user's draws come from their community's items (by popularity within the
  community), the rest from the whole catalogue (by global popularity).

Item draws are i.i.d. (inverse CDF by binary search), so a user can draw an item twice: repeats are
dropped and redrawn for a few rounds (``_TOPUP_ROUNDS``), and what is still missing is logged.
Users are generated in blocks of about ``_CHUNK_EDGES`` edges, each block deduplicated on its own
(blocks hold disjoint users), so peak memory is the output (~28 bytes an edge: user and item int64,
timestamp int64, weight float32) plus a few hundred MB of working space. Generation time and peak
memory at 5M-50M edges are in ``benchmarks/results/scale.json`` (``generate_s``,
``peak_rss_bytes``; ``python benchmarks/scale.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybrid.data.interactions import Interactions

logger = logging.getLogger(__name__)

# Edges generated per block of users: bounds the working memory (~60 bytes an edge of the block).
_CHUNK_EDGES = 1 << 22
# Rounds of redrawing a block's repeated (user, item) draws before accepting a shortfall.
_TOPUP_ROUNDS = 6
# Timestamps are uniform over 2020 (Unix seconds, UTC).
_TIME_START = 1_577_836_800
_TIME_SPAN = 366 * 24 * 3600


def _draw_edges(table: _ItemTable, degrees: np.ndarray, n_edges: int, n_items: int, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """Users' and items' int64 arrays of the drawn edges, block by block of about ``_CHUNK_EDGES``
    edges (bounded memory), and how many repeated draws were redrawn."""
    users_out = np.empty(n_edges, np.int64)
    items_out = np.empty(n_edges, np.int64)
    filled = redrawn = 0
    cuts = np.searchsorted(np.cumsum(degrees), np.arange(_CHUNK_EDGES, n_edges, _CHUNK_EDGES), side="right")
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(degrees)], strict=True):
        if hi <= lo:
            continue
        keys, repeats = table.draw_block(int(lo), int(hi), degrees[lo:hi], rng)
        redrawn += repeats
        users_out[filled:filled + len(keys)] = keys // n_items
        items_out[filled:filled + len(keys)] = keys % n_items
        filled += len(keys)
    # Shrink in place (no view of them exists): no second copy of the output at the peak.
    users_out.resize(filled, refcheck=False)
    items_out.resize(filled, refcheck=False)
    return users_out, items_out, redrawn


def power_law_interactions(
    n_users: int,
    n_items: int,
    n_edges: int,
    *,
    user_exponent: float = 0.6,
    item_exponent: float = 0.8,
    seed: int = 0,
    communities: int = 16,
    in_community: float = 0.8,
) -> Interactions:
    """A random user-item graph with power-law degrees and planted taste communities.

    Args:
        n_users: users (raw ids 0 .. n_users - 1, a ``RangeIndex``).
        n_items: items (raw ids 0 .. n_items - 1).
        n_edges: target number of distinct (user, item) edges. The result can hold slightly
            fewer, and the log says how many: repeated draws are redrawn for a few rounds only
            (a WARNING past 1% short, when n_edges nears the degree cap below).
        user_exponent: a_user ≥ 0, the Zipf exponent of user activity; degrees are capped at
            max(1, n_items // (2 * communities)), the excess going to the others by activity.
        item_exponent: a_item ≥ 0, the Zipf exponent of item popularity.
        seed: seeds numpy's generator; the same arguments and seed give the same graph.
        communities: C in [1, n_items], the planted taste communities.
        in_community: share in [0, 1] of each user's draws taken from their community's items;
            the rest come from the whole catalogue, so the realised share is about
            in_community + (1 - in_community) / C.

    Returns:
        :class:`~hybrid.data.interactions.Interactions` with unit weights and timestamps uniform
        over 2020 (so temporal splits work), sorted by (user, item), no repeated pair. Every user
        has at least one edge when ``n_edges >= n_users``. :func:`planted_communities` with the
        same ``n_users``, ``n_items``, ``seed`` and ``communities`` gives the ground truth.
    """
    _check(n_users, n_items, n_edges, user_exponent, item_exponent, communities, in_community)
    cap = max(1, n_items // (2 * communities))
    if n_edges > n_users * cap:
        raise ValueError(
            f"n_edges={n_edges} is more than n_users * the degree cap n_items // (2 * communities) "
            f"({n_users} * {cap}); raise n_users or n_items, or lower communities"
        )
    rng = np.random.default_rng(seed)
    user_by_rank, item_by_rank = _ranks(n_users, n_items, rng)
    user_comm = np.empty(n_users, np.int64)
    user_comm[user_by_rank] = np.arange(n_users) % communities
    activity = np.empty(n_users)
    activity[user_by_rank] = _zipf(n_users, user_exponent)
    degrees = _degrees(activity, n_edges, cap, rng)
    del activity, user_by_rank
    table = _ItemTable.build(item_by_rank, item_exponent, communities, user_comm, in_community)

    users_out, items_out, redrawn = _draw_edges(table, degrees, n_edges, n_items, rng)
    filled = len(users_out)  # short by over 1%: the degree cap is nearly binding
    logger.log(
        logging.WARNING if n_edges - filled > 0.01 * n_edges else logging.INFO,
        "power_law_interactions: %d edges, %d (%.3f%%) below n_edges=%d; %d repeated draws redrawn",
        filled, n_edges - filled, 100 * (n_edges - filled) / n_edges, n_edges, redrawn,
    )
    timestamps = rng.integers(_TIME_START, _TIME_START + _TIME_SPAN, filled, dtype=np.int64)
    return _sorted_interactions(n_users, n_items, users_out, items_out, timestamps)


def planted_communities(
    n_users: int, n_items: int, *, seed: int = 0, communities: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """The communities :func:`power_law_interactions` planted for the same ``n_users``,
    ``n_items``, ``seed`` and ``communities`` (its other arguments do not move them).

    Returns:
        (user_comm int64 [n_users], item_comm int64 [n_items]), values in [0, communities): the
        ground truth to check that a model (or a sampler) recovers the structure.
    """
    _check(n_users, n_items, 1, 0.0, 0.0, communities, 0.0)
    user_by_rank, item_by_rank = _ranks(n_users, n_items, np.random.default_rng(seed))
    user_comm = np.empty(n_users, np.int64)
    user_comm[user_by_rank] = np.arange(n_users) % communities
    item_comm = np.empty(n_items, np.int64)
    item_comm[item_by_rank] = np.arange(n_items) % communities
    return user_comm, item_comm


def _check(
    n_users: int, n_items: int, n_edges: int, user_exponent: float, item_exponent: float,
    communities: int, in_community: float,
) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_edges", n_edges)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("user_exponent", user_exponent), ("item_exponent", item_exponent)):
        if not (_is_real(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 (0 = uniform), got {value!r}")
    if not _is_int(communities) or not 1 <= communities <= n_items:
        raise ValueError(f"communities must be an integer in [1, n_items={n_items}], got {communities!r}")
    if not (_is_real(in_community) and 0 <= in_community <= 1):
        raise ValueError(f"in_community must be a share in [0, 1], got {in_community!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _ranks(n_users: int, n_items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user_by_rank, item_by_rank): the id of each activity / popularity rank. Drawn first from
    the seeded generator, so :func:`planted_communities` replays them without the edges."""
    return rng.permutation(n_users), rng.permutation(n_items)


def _zipf(n: int, exponent: float) -> np.ndarray:
    """float64 [n]: (r + 1)^-exponent for ranks r = 0 .. n - 1, normalised to sum 1."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def _degrees(activity: np.ndarray, n_edges: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [n_users] target degrees summing to ``n_edges``: one edge each when there are enough
    (every user appears), the rest multinomial in ``activity``; degrees above ``cap`` are cut and
    the excess re-dealt to the users still under it (water-filling; feasible as the caller checked
    n_edges <= n_users * cap)."""
    base = 1 if n_edges >= len(activity) else 0
    degrees = base + rng.multinomial(n_edges - base * len(activity), activity)
    while (excess := int(np.maximum(degrees - cap, 0).sum())) > 0:
        np.minimum(degrees, cap, out=degrees)
        room = np.where(degrees < cap, activity, 0.0)
        degrees += rng.multinomial(excess, room / room.sum())
    return degrees.astype(np.int64)


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # a uniform draw u < 1 always lands inside
    return cdf


@dataclass
class _ItemTable:
    """Everything a block needs to draw items: a global CDF over popularity ranks and one CDF per
    community laid end to end on [0, C) (community k's on [k, k + 1]), so one ``searchsorted`` of
    ``k + u`` draws inside community k for every draw at once."""

    n_items: int
    item_by_rank: np.ndarray  # int64 [n_items]
    global_cdf: np.ndarray  # float64 [n_items], by rank
    comm_items: np.ndarray  # int64 [n_items], item ids grouped by community, by rank inside
    comm_cdf: np.ndarray  # float64 [n_items], aligned with comm_items
    user_comm: np.ndarray  # int64 [n_users]
    in_community: float

    @classmethod
    def build(
        cls, item_by_rank: np.ndarray, exponent: float, communities: int, user_comm: np.ndarray,
        in_community: float,
    ) -> _ItemTable:
        n_items = len(item_by_rank)
        popularity = _zipf(n_items, exponent)
        comm_of_rank = np.arange(n_items) % communities
        order = np.argsort(comm_of_rank, kind="stable")  # ranks grouped by community, rank order kept
        weights, comm = popularity[order], comm_of_rank[order]
        starts = np.flatnonzero(np.r_[True, comm[1:] != comm[:-1]])
        within = np.cumsum(weights)
        before = np.r_[0.0, within][starts]  # cumulative mass before each community
        totals = np.add.reduceat(weights, starts)
        comm_cdf = comm + (within - before[comm]) / totals[comm]
        comm_cdf[np.r_[starts[1:] - 1, n_items - 1]] = np.arange(1, communities + 1)  # exact ends
        return cls(n_items, item_by_rank, _cdf(popularity), item_by_rank[order], comm_cdf, user_comm, in_community)

    def items_for(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """int64 [len(users)]: one item drawn for each entry of ``users``."""
        u = rng.random(len(users))
        inside = rng.random(len(users)) < self.in_community
        items = np.empty(len(users), np.int64)
        target = self.user_comm[users[inside]] + u[inside]
        items[inside] = self.comm_items[np.searchsorted(self.comm_cdf, target, side="right")]
        items[~inside] = self.item_by_rank[np.searchsorted(self.global_cdf, u[~inside], side="right")]
        return items

    def draw_block(
        self, lo: int, hi: int, degrees: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """Distinct edges of users lo .. hi - 1 as sorted keys user * n_items + item, and the
        number of repeated draws that were redrawn.

        A redraw only fills each user's missing count with fresh distinct pairs, so no user ends
        above their target degree.
        """
        ids = np.arange(lo, hi, dtype=np.int64)
        users = np.repeat(ids, degrees)
        keys = _sorted_unique(users * self.n_items + self.items_for(users, rng))
        draws = len(users)
        for _ in range(_TOPUP_ROUNDS):
            missing = degrees - np.bincount(keys // self.n_items - lo, minlength=hi - lo)
            if not missing.any():
                break
            users = np.repeat(ids, missing)
            new = _sorted_unique(users * self.n_items + self.items_for(users, rng))
            at = np.searchsorted(keys, new)
            fresh = keys[np.minimum(at, len(keys) - 1)] != new
            keys = np.insert(keys, at[fresh], new[fresh])  # stays sorted: O(block), no re-sort
            draws += len(users)
        return keys, draws - len(keys)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` by an in-place sort (numpy 2's ``unique`` hashes, which is slower on these int64 keys)."""
    keys.sort()
    return keys[np.r_[True, keys[1:] != keys[:-1]]]


def _sorted_interactions(
    n_users: int, n_items: int, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray
) -> Interactions:
    """``Interactions(RangeIndex(n_users), RangeIndex(n_items), users, items, ones, timestamps)``
    for pairs already sorted by (user, item) and distinct, without the constructor's lexsort and
    copies (a lexsort of already sorted input and a gather per array, at tens of millions of
    edges the largest part of building the table). ``tests/test_scale_blocks.py`` checks the two are equal."""
    data = Interactions.__new__(Interactions)
    data.user_ids = pd.RangeIndex(n_users)
    data.item_ids = pd.RangeIndex(n_items)
    data.users = users
    data.items = items
    data.weights = np.ones(len(users), np.float32)
    data.timestamps = timestamps
    return data
