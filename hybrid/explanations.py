"""The facade's "why this item": :class:`Explaining`, mixed into :class:`~hybrid.recommender.HybridRecommender`.

    rec.explain("u42", "i7")                       # one dict
    rec.explain("u42", items=["i7", "i9"])         # a list of dicts, one signal pass, exact scores
    rec.explain_top("u42", k=20)                   # the top-20 list, each item explained
    rec.recommend("u42", k=20, explain=True)       # (ids, scores, explanations)
    rec.explain_for_user(["i7"], profile="...", known=["i3"])   # a new or zero-history user

Each dict is :meth:`hybrid.fusion.explain.Explanation.to_dict` with item ids: the item's count
bucket, the path its score took, each signal's contribution and the bias (summing to ``score``,
the score the list was ranked by: with ``retrieval: ann`` the two-stage ranker's, its signals
standardised on the reference items, and ``path`` says "(two-stage)"; an exploration slot's and
named items' (``explain(user, items=...)``, as ``recommend(user, items=...)``) exact scores), the
user's items behind it and a ``because`` line. ``explain_for_user`` follows ``recommend_for_user``:
exact scores. Users are explained in batches sized as the ranking's (``user_batch_size``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hybrid.data.interactions import BadInputError, lookup_ids
from hybrid.fusion.explain import ExplainedRow
from hybrid.fusion.model import FusionHybrid
from hybrid.fusion.signals import FEATURES
from hybrid.models.base import Recommender
from hybrid.retrieval.ranking import top_k, user_batch_size


class _KeptRows:
    """The hybrid as ``top_k`` ranks with it, keeping the signal rows of the batch it last scored."""

    def __init__(self, model: FusionHybrid) -> None:
        self.model, self.rows = model, None

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        self.rows = self.model.signal_rows(users, history)
        return self.model.fuse_rows(self.rows)


class Explaining:
    """Explanations over the facade's id maps (``model_``, ``user_ids_``, ``item_ids_``, ``history_``)."""

    model_: FusionHybrid
    user_ids_: pd.Index
    item_ids_: pd.Index
    history_: sp.csr_matrix

    if TYPE_CHECKING:  # the facade's own methods, declared for the type checker only
        def _check_fitted(self) -> None: ...

        def recommend(self, users: Any, k: int = 10, filter_seen: bool = True, **kwargs: Any,
                      ) -> tuple[np.ndarray, ...]: ...

    def explain(self, user: Any, item: Any = None, items: Sequence[Any] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Why ``item`` (a dict) or each of ``items`` (a list of dicts, one signal pass) is scored
        as it is for the known ``user``: as ``recommend(user, items=[...])`` scores named items,
        exactly (with ``retrieval: ann`` too; :meth:`explain_top` follows the two-stage ranker).
        Unknown ids raise ``UnknownIdError``."""
        self._check_fitted()
        if (item is None) == (items is None):
            raise BadInputError("give one item, or items=[...] (not both, not neither)")
        if np.ndim(user) != 0:
            raise BadInputError(f"user must be one id, got {type(user).__name__}")
        index = lookup_ids(self.user_ids_, [user], "user")
        wanted = lookup_ids(self.item_ids_, [item] if items is None else list(items), "item")
        if len(wanted) == 0:
            raise BadInputError("items is empty")
        row = self.explained(index, [wanted], two_stage=False)[0]
        return row[0] if items is None else row

    def explain_top(self, user: Any, k: int = 10, filter_seen: bool = True) -> list[dict[str, Any]]:
        """The user's top-k list (as :meth:`recommend` ranks it), each item explained."""
        return self.recommend(user, k=k, filter_seen=filter_seen, explain=True)[-1]

    def explain_for_user(self, items: Sequence[Any], profile: str | None = None, known: Sequence[Any] = (),
                         ) -> list[dict[str, Any]]:
        """Why ``items`` score as they do for a new user with ``profile`` text and/or ``known``
        items, scored as :meth:`recommend_for_user` scores them (no items: the zero-history path)."""
        self._check_fitted()
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            raise BadInputError("profile must be a non-empty string of side information, or None")
        index = lookup_ids(self.item_ids_, list(known), "item")
        if profile is None and len(index) == 0:
            raise BadInputError("give a profile, known items, or both: with neither there is nothing to explain")
        wanted = lookup_ids(self.item_ids_, list(items), "item")
        if len(wanted) == 0:
            raise BadInputError("items is empty")
        history = sp.csr_matrix((np.ones(len(index), np.float32), (np.zeros(len(index), int), index)),
                                shape=(1, len(self.item_ids_)))
        with torch.inference_mode():
            side = None if profile is None else self.model_.text_vectors([profile])
            profiles = side if len(index) == 0 else None  # as score_text: the text is the profile
            rows = self.model_.explain(np.array([-1]), history, [wanted], side=side, profiles=profiles)
        return rows[0].to_dicts(None, self.item_ids_.to_numpy())

    def explained(self, users: np.ndarray, items: list[np.ndarray], two_stage: bool | None = None,
                  ) -> list[list[dict[str, Any]]]:
        """Explanation dicts of each known user's (index) item indices, ids filled in; ``two_stage``
        (None: whether this recommender ranks two-stage) explains the two-stage ranker's scores."""
        two_stage = getattr(self, "stage_", None) is not None if two_stage is None else two_stage
        out: list[list[dict[str, Any]]] = []
        for start, batch in self._batches(users):
            with torch.inference_mode():
                rows = self.model_.explain(batch, self.history_[batch], items[start:start + len(batch)],
                                           two_stage=two_stage)
            out += self._dicts(batch, rows)
        return out

    def _batches(self, users: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(start, user indices) in batches whose signal pass holds ~len(FEATURES) [b, n_items]."""
        size = user_batch_size(len(self.item_ids_) * len(FEATURES))
        for start in range(0, len(users), size):
            yield start, np.asarray(users[start:start + size])

    def _dicts(self, batch: np.ndarray, rows: list[ExplainedRow]) -> list[list[dict[str, Any]]]:
        ids, user_ids = self.item_ids_.to_numpy(), self.user_ids_.to_numpy()
        return [row.to_dicts(user_ids[u], ids) for u, row in zip(batch, rows, strict=True)]

    def ranked(self, ranker: Recommender, users: np.ndarray, k: int, filter_seen: bool, candidates: np.ndarray | None,
               explain: bool) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, Any]]] | None]:
        """``top_k``'s (items, scores) by ``ranker``; with ``explain`` and the exact ranker, the
        listed items' explanations too, from the same signal pass (else None: explained after)."""
        if explain and ranker is self.model_:
            return self.ranked_explained(users, k, filter_seen, candidates)
        return (*top_k(ranker, users, self.history_, k, filter_seen=filter_seen, candidates=candidates), None)

    def ranked_explained(self, users: np.ndarray, k: int, filter_seen: bool, candidates: np.ndarray | None,
                         ) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, Any]]]]:
        """``top_k``'s (items, scores) of ``users`` (indices) with each listed item explained from
        the signal rows the list was ranked by: one signal pass, not a second for the reasons."""
        kept = _KeptRows(self.model_)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        explained: list[list[dict[str, Any]]] = []
        for _, batch in self._batches(users):
            top, scores = top_k(kept, batch, self.history_, k, batch_size=len(batch), filter_seen=filter_seen,
                                candidates=candidates)
            with torch.inference_mode():
                rows = self.model_.explain(batch, self.history_[batch], list(top), rows=kept.rows)
            parts.append((top, scores))
            explained += self._dicts(batch, rows)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), explained

    def explained_lists(self, users: np.ndarray, listed: np.ndarray, ranked: np.ndarray, two_stage: bool,
                        ) -> list[list[dict[str, Any]]]:
        """Explanations of the ``listed`` item indices [b, k] of ``users``, each by the score it
        was listed with: with ``two_stage`` the two-stage ranker's for items of its ``ranked``
        list [b, k'], the exact score for the others (exploration slots, scored by
        :func:`~hybrid.fusion.explore.eligible_scores`)."""
        if not two_stage:
            return self.explained(users, list(listed), two_stage=False)
        exact = np.stack([~np.isin(row, plain) for row, plain in zip(listed, ranked, strict=True)]) \
            if len(listed) else np.zeros(np.shape(listed), bool)
        staged = self.explained(users, [row[~e] for row, e in zip(listed, exact, strict=True)], two_stage=True)
        if not exact.any():
            return staged
        some = np.flatnonzero(exact.any(axis=1))  # only rows with an exploration slot get the exact pass
        rest = dict(zip(some.tolist(), self.explained(users[some], [listed[r][exact[r]] for r in some],
                                                      two_stage=False), strict=True))
        merged = []
        for r, (e, row) in enumerate(zip(exact, staged, strict=True)):
            parts = [iter(row), iter(rest.get(r, []))]
            merged.append([next(parts[int(x)]) for x in e])
        return merged
