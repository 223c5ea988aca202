"""Earlier time cuts pooled into the item gate's rehearsal: each sees only its own past."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from hybrid.data.interactions import Interactions
from hybrid.fusion.gate import GateExamples
from hybrid.fusion.rehearsal import earlier_rehearsals

DAY = 86_400


def timed_data() -> Interactions:
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 1_600_000_000 + int(t) * DAY) for u in range(60)
            for i, t in zip(rng.choice(40, 8, replace=False), rng.integers(0, 100, 8), strict=True)]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


def test_each_earlier_cut_rehearses_only_the_period_before_its_end() -> None:
    data = timed_data()
    cuts = earlier_rehearsals(data, None, 0.2, seed=0, ends=(0.5, 0.8))
    assert len(cuts) == 2
    for end, cut in zip((0.5, 0.8), cuts, strict=True):
        limit = np.quantile(data.timestamps, end)
        assert cut.fit.timestamps.max() < limit  # its graph: before its own cut, inside its period
        later = data.timestamps >= limit
        seen_late = set(zip(data.users[later].tolist(), data.items[later].tolist(), strict=True))
        rows, cols = cut.positives.nonzero()
        assert not seen_late & set(zip(rows.tolist(), cols.tolist(), strict=True))  # nothing from after its end
    assert earlier_rehearsals(data, None, 0.2, seed=0, ends=()) == []
    untimed = Interactions(data.user_ids, data.item_ids, data.users, data.items, data.weights, None)
    assert earlier_rehearsals(untimed, None, 0.2, seed=0, ends=(0.5,)) == []


def test_stacked_examples_keep_every_part_and_pad_with_no_candidate() -> None:
    def part(users: int, width: int) -> GateExamples:
        return GateExamples(torch.ones(users, width, 3), torch.ones(users, width, dtype=torch.bool),
                            torch.zeros(users, width, dtype=torch.bool), torch.ones(users, width, dtype=torch.int64),
                            torch.zeros(users, width))

    stacked = GateExamples.stacked([part(2, 4), part(3, 6)])
    assert stacked.feats.shape == (5, 6, 3) and stacked.labels.shape == (5, 6)
    assert not stacked.labels[:2, 4:].any() and torch.isneginf(stacked.log_w[:2, 4:]).all()
    assert stacked.labels[2:].all()


def test_time_rehearsal_new_users_are_the_arrivals_after_its_cut() -> None:
    from hybrid.fusion.new_users import time_new_users
    from hybrid.fusion.rehearsal import temporal_validation
    from hybrid.models.base import FitData

    rng = np.random.default_rng(0)
    # 60 users from day 0, 60 more who arrive on days 97-99 (each with 4 interactions)
    rows = [(u, int(i), 1_600_000_000 + int(t) * DAY) for u in range(60)
            for i, t in zip(rng.choice(40, 8, replace=False), rng.integers(0, 100, 8), strict=True)]
    rows += [(u, int(i), 1_600_000_000 + int(t) * DAY) for u in range(60, 120)
             for i, t in zip(rng.choice(40, 4, replace=False), rng.integers(97, 100, 4), strict=True)]
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    split = temporal_validation(data, None, 0.4)  # the cut falls before day 97
    fit_data = FitData(train=data, valid=None, item_text=["x"] * data.n_items, seed=0, device="cpu")
    users, first = time_new_users(split, fit_data, limit=1000, rng=np.random.default_rng(0))
    assert (split.fit.user_counts()[users] == 0).all() and (split.positives[users].getnnz(axis=1) >= 2).all()
    arrivals = np.flatnonzero((split.fit.user_counts() == 0) & (split.positives.getnnz(axis=1) >= 2))
    assert len(arrivals) - len(users) >= 20  # left to the floor's judges
    stamps = dict(zip(zip(data.users.tolist(), data.items.tolist(), strict=True), data.timestamps.tolist(), strict=True))
    for user, items in zip(users, first, strict=True):
        times = [stamps[(int(user), int(i))] for i in items]
        assert times == sorted(times)  # in time order: the first ones are what they reveal
    untimed = dataclasses.replace(split, by="random")
    assert time_new_users(untimed, fit_data, 1000, np.random.default_rng(0)) is None
