"""Earlier time cuts pooled into the item gate's rehearsal: each sees only its own past."""

from __future__ import annotations

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
