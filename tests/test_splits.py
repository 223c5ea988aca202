"""Splits: what goes where, what is cold, and refusal of train/test overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybrid.config import SplitConfig
from hybrid.data.splits import Split, cold_items, cold_users, leave_last, make_split, temporal


def log(n_users: int = 20, n_items: int = 30, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        for t, i in enumerate(items):
            rows.append((u, int(i), 1000 * u + t + 1_000_000 * (t >= per_user - 2), 1.0))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp", "weight"])


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"], frame["item"], strict=True))


def test_temporal_by_fraction_and_date() -> None:
    frame = log()
    split = temporal(frame, SplitConfig(kind="temporal", fraction=0.75, valid_per_user=0))
    cut = np.quantile(frame["timestamp"], 0.75)
    assert (split.train["timestamp"] < cut).all() and (split.test["timestamp"] >= cut).all()
    assert len(split.train) + len(split.test) == len(frame)
    dated = temporal(frame, SplitConfig(kind="temporal", at="1970-01-12", valid_per_user=0))
    assert (dated.test["timestamp"] >= 11 * 86400).all()


def test_leave_last_takes_each_users_latest() -> None:
    frame = log()
    split = leave_last(frame, SplitConfig(kind="leave_last", n=2, valid_per_user=1))
    assert split.test.groupby("user").size().eq(2).all()
    latest = frame.sort_values("timestamp").groupby("user").tail(2)
    assert pairs(split.test) == pairs(latest)
    # validation = the last training interaction per user, carved from train
    assert split.valid.groupby("user").size().eq(1).all()
    assert not pairs(split.valid) & pairs(split.train)
    assert len(split.train) + len(split.valid) + len(split.test) == len(frame)


def test_cold_items_hold_out_all_interactions_of_a_seeded_share() -> None:
    frame = log()
    config = SplitConfig(kind="cold_items", cold_fraction=0.2, unsold_fraction=0.0, seed=3)
    split = cold_items(frame, config)
    assert len(split.cold_items) == round(0.2 * frame["item"].nunique())
    assert not set(split.train["item"]) & split.cold_items
    assert not set(split.valid["item"]) & split.cold_items
    held = frame[frame["item"].isin(split.cold_items)]
    assert pairs(held) <= pairs(split.test)
    assert cold_items(frame, config).cold_items == split.cold_items  # seeded


def test_a_seeded_share_of_held_out_items_stays_unsold() -> None:
    frame = log()
    sold_all = cold_items(frame, SplitConfig(kind="cold_items", cold_fraction=0.2, unsold_fraction=0.0, seed=3))
    split = cold_items(frame, SplitConfig(kind="cold_items", cold_fraction=0.2, unsold_fraction=0.5, seed=3))
    assert len(split.unsold_items) == round(0.5 * len(sold_all.cold_items))
    assert split.unsold_items <= sold_all.cold_items  # the same held-out items, some of them unsold
    assert split.cold_items == sold_all.cold_items - split.unsold_items
    assert not set(split.test["item"]) & split.unsold_items  # nobody buys them in the test period
    assert not set(split.train["item"]) & split.unsold_items  # nor before: they are new items
    with pytest.raises(ValueError, match="unsold_fraction"):
        cold_items(frame, SplitConfig(kind="cold_items", unsold_fraction=1.0))


def test_cold_items_first_seen_after_date_train_nothing_after_it() -> None:
    frame = log()
    frame.loc[frame["item"] == 29, "timestamp"] += 2 * 10**8  # a new item, first seen in 1976
    frame.loc[frame["user"] == 0, "timestamp"] += 3 * 10**8  # warm items bought after the cut too
    split = cold_items(frame, SplitConfig(kind="cold_items", at="1975-01-01"))
    cut = int(pd.Timestamp("1975-01-01", tz="UTC").timestamp())
    assert split.cold_items == frozenset({29}) and split.cut == cut
    assert (split.train["timestamp"] < cut).all() and (split.valid["timestamp"] < cut).all()
    assert pairs(split.test) == pairs(frame[frame["timestamp"] >= cut])  # user 0's warm rows are test, not training


def test_cold_users_revealed_first_interactions() -> None:
    frame = log()
    split = cold_users(frame, SplitConfig(kind="cold_users", cold_fraction=0.25, reveal=3, seed=1))
    assert len(split.cold_users) == 5 and split.cold_axis == "user"
    assert not set(split.train["user"]) & split.cold_users
    assert split.revealed.groupby("user").size().eq(3).all()
    for user in split.cold_users:
        mine = frame[frame["user"] == user].sort_values("timestamp")
        assert pairs(split.revealed[split.revealed["user"] == user]) == pairs(mine.head(3))
        assert pairs(split.test[split.test["user"] == user]) == pairs(mine.iloc[3:])


def test_overlap_between_train_and_test_is_refused() -> None:
    frame = log()
    with pytest.raises(ValueError, match=r"pairs are in both train and test.*refusing"):
        Split("bad", train=frame, valid=frame.iloc[:0], test=frame.iloc[:3])
    test = frame.iloc[:5][["user", "item"]]
    with pytest.raises(ValueError, match=r"5 \(user, item\) pairs are in both train and test"):
        make_split(frame, SplitConfig(kind="predefined", valid_per_user=0), test)


def test_split_needing_time_without_timestamps_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal(log().drop(columns="timestamp"), SplitConfig(kind="temporal"))
