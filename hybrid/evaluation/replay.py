"""A replay of a period in order: how fast new items earn history under an exploration policy.

Each step (a day, a week, a month) the model recommends k items to that step's users; an item
shown to a user who interacts with it in the same step is a click, and clicks join the training
data (``partial_fit``) before the next step. Interactions the list did not show never join: what
a deployed recommender learns is what it showed. Users the model does not know yet (no history
before the step) are not served, since the list of a user with nothing to go on is not what
exploration changes; their count is reported.

An item *warms* when its clicks bring it to ``warm_at`` interactions. New items are those of the
catalogue with no interaction before the replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from hybrid.fusion.explore import ExploreConfig
from hybrid.recommender import HybridRecommender

logger = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    """What one replay saw (JSON-ready with :meth:`record`).

    Attributes:
        steps: steps replayed; users_served / users_unknown: user-steps served and skipped.
        shown / clicks: list places shown and clicked; click_rate = clicks / shown.
        new_items: catalogue items with no interaction before the replay; shown_new: of them shown
            at least once; warmed: of them reaching ``warm_at`` interactions by the end;
            steps_to_half_warmed: steps until half of those ``warmed`` had (None if none did).
        explore_shown / explore_clicks: places from exploratory slots, and their clicks.
    """

    steps: int = 0
    users_served: int = 0
    users_unknown: int = 0
    shown: int = 0
    clicks: int = 0
    new_items: int = 0
    shown_new: int = 0
    warmed: int = 0
    steps_to_half_warmed: int | None = None
    explore_shown: int = 0
    explore_clicks: int = 0
    seconds: float = 0.0
    warmed_at_step: list[int] = field(default_factory=list)
    model: HybridRecommender | None = field(default=None, repr=False)  # the model after the replay

    @property
    def click_rate(self) -> float:
        return self.clicks / self.shown if self.shown else 0.0

    def record(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row.pop("warmed_at_step"), row.pop("model")
        return {**row, "click_rate": round(self.click_rate, 6), "seconds": round(self.seconds, 1)}


def replay(
    rec: HybridRecommender,
    periods: Sequence[pd.DataFrame],
    k: int = 20,
    explore: ExploreConfig | None = None,
    warm_at: int = 5,
) -> ReplayResult:
    """Replay ``periods`` (frames with the fit's user and item columns, one per step, in order) on a
    copy of ``rec`` (``rec`` itself is not changed)."""
    start = time.perf_counter()
    model = rec.copy()
    user_col, item_col = rec.columns.user, rec.columns.item
    counts = pd.Series(np.asarray(model.history_.sum(axis=0)).ravel().astype(np.int64), index=model.item_ids_)
    new = set(counts.index[counts.to_numpy() == 0])
    result = ReplayResult(new_items=len(new))
    shown_new: set[Any] = set()
    warmed_step: dict[Any, int] = {}
    for step, period in enumerate(periods):
        truth = period.groupby(user_col)[item_col].agg(set)
        known = truth.index[truth.index.isin(model.user_ids_)]
        result.users_unknown += len(truth) - len(known)
        result.steps += 1
        if len(known) == 0:
            continue
        users = list(known)
        if explore is None:
            items, _ = model.recommend(users, k=k)
            flags = np.zeros(items.shape, bool)
        else:
            items, _, flags = model.recommend(users, k=k, explore=explore, step=step)
        clicked_rows = []
        for row, user in enumerate(users):
            bought = truth[user]
            for item, flag in zip(items[row], flags[row], strict=True):
                hit = item in bought
                if hit:
                    clicked_rows.append((user, item))
                result.explore_shown += int(flag)
                result.explore_clicks += int(flag and hit)
        result.users_served += len(users)
        result.shown += items.size
        result.clicks += len(clicked_rows)
        shown_new.update(set(items.ravel().tolist()).intersection(new))
        if clicked_rows:
            clicks = pd.DataFrame(clicked_rows, columns=[user_col, item_col])
            model.partial_fit(clicks)
            for item, n in clicks[item_col].value_counts().items():
                counts[item] += n
                if counts[item] >= warm_at and item not in warmed_step and item in new:
                    warmed_step[item] = step + 1
    result.shown_new = len(shown_new)
    result.warmed = len(warmed_step)
    result.warmed_at_step = sorted(warmed_step.values())
    if warmed_step:
        result.steps_to_half_warmed = result.warmed_at_step[(len(warmed_step) + 1) // 2 - 1]
    result.seconds = time.perf_counter() - start
    result.model = model
    return result


def periods_of(frame: pd.DataFrame, start: float, end: float, freq: str, time_column: str = "timestamp") -> list[pd.DataFrame]:
    """The rows of ``frame`` with ``start <= time < end`` (Unix seconds), one frame per calendar ``freq``
    ("D", "W" or "M"), empty steps dropped, in order."""
    part = frame[(frame[time_column] >= start) & (frame[time_column] < end)]
    keys = pd.to_datetime(part[time_column], unit="s").dt.to_period(freq)
    return [group for _, group in part.groupby(keys, sort=True)]
