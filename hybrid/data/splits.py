"""Train / validation / test splits that say which items and users are cold.

Every function takes the canonical interaction table (``Interactions.to_frame()``: user, item,
weight, optional timestamp) and returns a :class:`Split`. Validation is always carved from the
training side (each user's last ``valid_per_user`` training interactions), never from the test set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from hybrid.config import SplitConfig
from hybrid.data.interactions import ITEM, ORDER, TIMESTAMP, USER

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """The result of a split; raises if train/validation/revealed share a (user, item) with test.

    Attributes:
        train: interactions the models learn from.
        valid: carved from the training period, for early stopping and tuning.
        test: held-out interactions to rank.
        revealed: known at test time but never trained on (a cold user's first interactions).
        cold_items / cold_users: ids with no training or validation interaction that appear in ``test``.
        unsold_items: held-out items whose test interactions were dropped (``unsold_fraction``):
            new items of the catalogue that no test user buys.
        cut: the time (Unix seconds) the split stands at (temporal and replay splits): what
            existed before it is known, the catalogue included; None for splits without a time.
    """

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    revealed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[USER, ITEM]))
    cold_items: frozenset = frozenset()
    cold_users: frozenset = frozenset()
    unsold_items: frozenset = frozenset()
    # Which axis the warm/cold report groups by: cold items, or cold (held-out) users.
    cold_axis: Literal["item", "user"] = "item"
    cut: int | None = None

    def __post_init__(self) -> None:
        if len(self.test) == 0:
            raise ValueError(f"split {self.name!r} left no test interactions; check its parameters")
        if len(self.train) == 0:
            raise ValueError(f"split {self.name!r} left no training interactions; check its parameters")
        test_keys = _pairs(self.test)
        for part in ("train", "valid", "revealed"):
            shared = test_keys.intersection(_pairs(getattr(self, part)))
            if len(shared):
                user, item = shared[0]
                raise ValueError(
                    f"split {self.name!r}: {len(shared)} (user, item) pairs are in both {part} and test, "
                    f"e.g. user {user!r}, item {item!r}; refusing to evaluate on seen interactions"
                )


def _pairs(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame[USER], frame[ITEM]])


def _order(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows sorted by user then time (or the source's order); without either, a seeded shuffle."""
    if TIMESTAMP in frame.columns:
        return frame.sort_values([USER, TIMESTAMP, ITEM], kind="stable")
    if ORDER in frame.columns:
        return frame.sort_values([USER, ORDER, ITEM], kind="stable")
    logger.info("no timestamps: 'last' interactions are drawn at random (seed %d)", seed)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    return shuffled.sort_values(USER, kind="stable")


def last_n(frame: pd.DataFrame, n: int, seed: int, min_keep: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off each user's last ``n`` interactions, for users who keep at least ``min_keep``."""
    if n <= 0 or len(frame) == 0:
        return frame, frame.iloc[:0]
    ordered = _order(frame, seed)
    size = ordered.groupby(USER)[ITEM].transform("size").to_numpy()
    from_end = ordered.groupby(USER).cumcount(ascending=False).to_numpy()
    held = (from_end < n) & (size >= n + min_keep)
    return ordered[~held], ordered[held]


def _finish(
    name: str, train: pd.DataFrame, test: pd.DataFrame, config: SplitConfig, **extra: object
) -> Split:
    train, valid = last_n(train, config.valid_per_user, config.seed, min_keep=1)
    # Known = seen in training or validation: every model may fit on both.
    known_items = set(train[ITEM]) | set(valid[ITEM])
    known_users = set(train[USER]) | set(valid[USER])
    cold_items = frozenset(set(test[ITEM]) - known_items)
    cold_users = frozenset(set(test[USER]) - known_users)
    split = Split(
        name, train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True),
        cold_items=cold_items, cold_users=cold_users, **extra,  # type: ignore[arg-type]
    )
    logger.info(
        "split %s: %d train, %d valid, %d test; %d cold items, %d cold users",
        name, len(split.train), len(split.valid), len(split.test), len(cold_items), len(cold_users),
    )
    return split


def _cutoff(frame: pd.DataFrame, config: SplitConfig, at: str | None = None) -> int:
    """The split's time: ``at`` (a date), else the ``fraction`` quantile of the interactions' times."""
    if TIMESTAMP not in frame.columns:
        if ORDER in frame.columns:
            raise ValueError(f"split kind {config.kind!r} needs times; this data set has only an order "
                             "(sequence positions), and an order is not a time: use leave_last or cold_items")
        raise ValueError(f"split kind {config.kind!r} needs timestamps; this data set has none")
    if at is not None:
        try:
            return int(pd.Timestamp(at, tz="UTC").timestamp())
        except ValueError as error:
            raise ValueError(f"split: {at!r} is not a date ({error})") from error
    if config.fraction is None or not 0 < config.fraction < 1:
        raise ValueError(f"split.fraction must be in (0, 1) when split.at is not given, got {config.fraction}")
    return int(np.quantile(frame[TIMESTAMP].to_numpy(), config.fraction))


def temporal(frame: pd.DataFrame, config: SplitConfig) -> Split:
    """Global temporal: train before T, test from T on (T = ``at`` or the ``fraction`` quantile)."""
    cut = _cutoff(frame, config, config.at)
    before = frame[TIMESTAMP] < cut
    return _finish(f"temporal@{pd.Timestamp(cut, unit='s').isoformat()}", frame[before], frame[~before], config,
                   cut=cut)


def leave_last(frame: pd.DataFrame, config: SplitConfig) -> Split:
    """Per user, the last ``n`` interactions by time are test (users keeping at least 2 in train)."""
    train, test = last_n(frame, config.n, config.seed, min_keep=2)
    return _finish(f"leave_last_{config.n}", train, test, config)


def cold_items(frame: pd.DataFrame, config: SplitConfig) -> Split:
    """A seeded ``cold_fraction`` of items (or, with ``at``, items first seen from T on) are held out
    with all their interactions; warm items use per-user leave-last-``n`` for their test rows.

    At random, a seeded ``unsold_fraction`` of the held-out items then loses its test rows too: they
    stay in the catalogue as new items that nobody buys (``Split.unsold_items``). Items first seen
    after ``at`` need none: the data's own new items include those that sold little or not at all.
    With ``at`` the split is by time: every row from the cut on is test, warm items' rows too."""
    if config.at is not None:
        # By time, nothing after the cut may train, warm items' rows included: a temporal split
        # whose new items are those first seen from the cut.
        cut = _cutoff(frame, config, config.at)
        before = frame[TIMESTAMP] < cut
        return _finish(f"cold_items(first seen from {config.at})", frame[before], frame[~before], config, cut=cut)
    if not 0 < config.cold_fraction < 1:
        raise ValueError(f"split.cold_fraction must be in (0, 1), got {config.cold_fraction}")
    if not 0 <= config.unsold_fraction < 1:
        raise ValueError(f"split.unsold_fraction must be in [0, 1), got {config.unsold_fraction}")
    items = np.sort(frame[ITEM].unique())
    rng = np.random.default_rng(config.seed)
    chosen = rng.choice(items, size=round(config.cold_fraction * len(items)), replace=False)
    held = set(chosen.tolist())
    unsold = set(rng.choice(np.sort(chosen), size=round(config.unsold_fraction * len(chosen)),
                            replace=False).tolist())
    how = f"{config.cold_fraction:.0%} seed {config.seed}, {config.unsold_fraction:.0%} of them unsold"
    is_cold = frame[ITEM].isin(held)
    warm_train, warm_test = last_n(frame[~is_cold], config.n, config.seed, min_keep=2)
    test = pd.concat([warm_test, frame[is_cold & ~frame[ITEM].isin(unsold)]])
    if unsold:
        logger.info("split: %d held-out items made unsold: their %d test interactions are dropped",
                    len(unsold), int(frame[ITEM].isin(unsold).sum()))
    return _finish(f"cold_items({how})", warm_train, test, config, unsold_items=frozenset(unsold))


def cold_users(frame: pd.DataFrame, config: SplitConfig) -> Split:
    """A seeded ``cold_fraction`` of users are held out entirely; each reveals its first ``reveal``
    interactions at test time (known, never trained on). Warm users use leave-last-``n``."""
    if not 0 < config.cold_fraction < 1:
        raise ValueError(f"split.cold_fraction must be in (0, 1), got {config.cold_fraction}")
    users = np.sort(frame[USER].unique())
    rng = np.random.default_rng(config.seed)
    held = set(rng.choice(users, size=round(config.cold_fraction * len(users)), replace=False).tolist())
    is_cold = frame[USER].isin(held)
    warm_train, warm_test = last_n(frame[~is_cold], config.n, config.seed, min_keep=2)
    cold = _order(frame[is_cold], config.seed)
    position = cold.groupby(USER).cumcount().to_numpy()
    revealed, cold_test = cold[position < config.reveal], cold[position >= config.reveal]
    split = _finish(
        f"cold_users({config.cold_fraction:.0%}, reveal {config.reveal})",
        warm_train, pd.concat([warm_test, cold_test]), config, revealed=revealed.reset_index(drop=True),
    )
    split.cold_users = frozenset(set(cold_test[USER]))
    split.cold_axis = "user"
    return split


def predefined(frame: pd.DataFrame, test: pd.DataFrame, config: SplitConfig) -> Split:
    """The data set's own split (e.g. the official LightGCN Gowalla files)."""
    return _finish("predefined", frame, test[[USER, ITEM]], config)


# split.step: calendar steps by name, or any pandas duration ("3D", "12h").
_STEPS = {"D": pd.DateOffset(days=1), "W": pd.DateOffset(weeks=1), "M": pd.DateOffset(months=1),
          "Q": pd.DateOffset(months=3), "Y": pd.DateOffset(years=1)}


def step_offset(step: str) -> pd.DateOffset | pd.Timedelta:
    """``split.step`` as an offset: D, W, M, Q, Y (calendar), or a duration such as "14D"."""
    if step in _STEPS:
        return _STEPS[step]
    try:
        offset = pd.Timedelta(step)
    except ValueError as error:
        raise ValueError(f"split.step {step!r} is neither one of {sorted(_STEPS)} nor a duration such as '14D'") \
            from error
    if offset <= pd.Timedelta(0):
        raise ValueError(f"split.step must be a positive duration, got {step!r}")
    return offset


def replay_splits(frame: pd.DataFrame, config: SplitConfig) -> list[Split]:
    """A rolling origin: ``steps`` consecutive periods of length ``step`` from ``start`` (a date,
    else the ``fraction`` quantile of time). Step i trains on every row before its start and tests
    its own rows; each split's ``cut`` is the step's start. Steps with no rows are left out (logged)."""
    if config.steps < 1:
        raise ValueError(f"split.steps must be >= 1, got {config.steps}")
    offset = step_offset(config.step)
    start = pd.Timestamp(_cutoff(frame, config, config.start), unit="s", tz="UTC")
    times = frame[TIMESTAMP].to_numpy()
    splits = []
    for i in range(config.steps):
        begin, end = start + i * offset, start + (i + 1) * offset  # calendar arithmetic for named steps
        low, high = int(begin.timestamp()), int(end.timestamp())
        inside = (times >= low) & (times < high)
        if not inside.any():
            logger.info("replay step %d [%s, %s): no interactions, left out", i, begin.date(), end.date())
            continue
        name = f"replay step {i}: [{begin.isoformat()}, {end.isoformat()})"
        splits.append(_finish(name, frame[times < low], frame[inside], config, cut=low))
    if not splits:
        raise ValueError(f"split: replay from {start.isoformat()} in {config.steps} steps of {config.step!r} "
                         "holds no interactions; check split.start / split.fraction")
    return splits


def make_split(frame: pd.DataFrame, config: SplitConfig, test: pd.DataFrame | None = None) -> Split:
    """Dispatch on ``config.kind`` (a replay has several splits: :func:`replay_splits`)."""
    if config.kind == "replay":
        raise ValueError("split.kind 'replay' makes one split per step: use replay_splits")
    if config.kind == "predefined":
        if test is None:
            raise ValueError("split.kind 'predefined' needs a data set that ships its own test set")
        return predefined(frame, test, config)
    makers = {"temporal": temporal, "leave_last": leave_last, "cold_items": cold_items, "cold_users": cold_users}
    if config.kind not in makers:
        raise ValueError(f"unknown split.kind {config.kind!r}; choose one of {sorted([*makers, 'predefined'])}")
    return makers[config.kind](frame, config)
