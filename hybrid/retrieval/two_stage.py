"""Two-stage ranking: cheap candidates from several sources, then the model's exact score on them.

Stage 1 takes the union, per user, of
    * the index's top ``candidates`` by the model's factor vectors (:mod:`hybrid.retrieval.ann`;
      :meth:`~hybrid.models.base.Recommender.item_factors`), asked for more when a user has seen
      many items so seen ones do not crowd the list out;
    * the ``popular`` most-interacted items;
    * the ``newest`` items (:func:`newest_items`: new arrivals with no interactions yet, which an
      index over interaction-trained vectors would never surface, then the items whose first
      interaction is latest; items added later with ``add_items`` come first).
Stage 2 scores the union with :meth:`~hybrid.models.base.Recommender.score_candidates` (exact
dot products for the embedding models and content; exact sparse columns for GF-CF) and ranks it.

``TwoStage`` is itself a :class:`~hybrid.models.base.Recommender`, so ``hybrid-eval`` and
:func:`~hybrid.retrieval.ranking.top_k` use it unchanged: its ``score`` is -inf outside the candidates.
With ``retrieval: {kind: ann, ...}`` in a model's ``params`` the evaluation wraps the model in it.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.interactions import Interactions
from hybrid.models.base import FitData, Recommender
from hybrid.retrieval.ann import AnnConfig, AnnIndex

logger = logging.getLogger(__name__)

CONFIG_FILE = "retrieval.json"
MAX_EXTRA = 1000  # at most this many extra index results for a user who has seen many items


@dataclass
class RetrievalConfig:
    """``kind: exact`` scores every item; ``ann`` ranks the stage-1 union only.

    Attributes:
        kind: "exact" or "ann".
        index: the ANN index settings (:class:`~hybrid.retrieval.ann.AnnConfig`).
        candidates: index results per user.
        popular: most-interacted items added to every user's candidates.
        newest: the newest items (:func:`newest_items`) added to every user's candidates.
    """

    kind: Literal["exact", "ann"] = "exact"
    index: AnnConfig = field(default_factory=AnnConfig)
    candidates: int = 200
    popular: int = 50
    newest: int = 50

    def validate(self) -> None:
        if self.kind not in ("exact", "ann"):
            raise ValueError(f"retrieval.kind must be 'exact' or 'ann', got {self.kind!r}")
        if self.candidates < 1 or self.popular < 0 or self.newest < 0:
            raise ValueError(f"retrieval.candidates must be >= 1 and popular, newest >= 0, got "
                             f"{self.candidates}, {self.popular}, {self.newest}")
        self.index.validate()


def newest_items(data: Interactions, n_items: int, n: int, valid: Interactions | None = None) -> np.ndarray:
    """int64 [min(n, n_items)]: the ``n`` newest of ``n_items`` items, newest first.

    Items without interactions (in ``data`` and ``valid``) are the newest arrivals; the rest follow
    by their first interaction, latest first, or without timestamps by their interaction count,
    fewest first (the best guess at age there is: rows carry no order, and an item's index is its
    id's sorted position, which says nothing of its age). Ties: the later in the catalogue first.
    """
    parts = [d for d in (data, valid) if d is not None]
    counts = np.zeros(n_items, np.int64)
    for part in parts:
        counts += np.bincount(part.items, minlength=n_items)[:n_items]
    if parts and all(p.timestamps is not None for p in parts):
        first = np.full(n_items, np.inf)
        for part in parts:
            np.minimum.at(first, part.items, part.timestamps.astype(np.float64))
        age = -first  # never seen: -inf, the newest
    else:
        age = counts.astype(np.float64)
    order = np.lexsort((-np.arange(n_items), age))
    return order[:n].astype(np.int64)


def retrieval_config(params: dict[str, Any] | RetrievalConfig | None) -> RetrievalConfig:
    config = params if isinstance(params, RetrievalConfig) else from_dict(RetrievalConfig, params or {}, "retrieval")
    config.validate()
    return config


class TwoStage(Recommender):
    """``model`` ranked over stage-1 candidates (see the module docstring).

    Args:
        model: the ranker; fitted here by :meth:`fit`, or already fitted (then call :meth:`build`).
        config: the retrieval settings.
    """

    def __init__(self, model: Recommender, config: RetrievalConfig | dict[str, Any] | None = None) -> None:
        self.model = model
        self.config = retrieval_config(config)

    @property
    def zero_history_prior(self) -> bool:  # type: ignore[override]
        return self.model.zero_history_prior

    def fit(self, data: FitData) -> Self:
        self.model.fit(data)
        newest = newest_items(data.train, data.train.n_items, self.config.newest, data.valid)
        return self.build(data.train.item_counts(), newest)

    def build(self, counts: np.ndarray, newest: np.ndarray) -> Self:
        """Index the fitted model's item factors; ``counts`` (int [n_items]) rank the popular source,
        ``newest`` (item indices, newest first: :func:`newest_items`) is the newest source."""
        factors = self.model.item_factors()
        if factors is None:
            raise ValueError(f"{type(self.model).__name__} has no item vectors to index (item_factors() is None); "
                             "use retrieval kind 'exact'")
        self.index_ = AnnIndex(self.config.index).build(factors.detach().float().cpu().numpy())
        self.n_items_ = factors.shape[0]
        self.popular_ = np.argsort(-np.asarray(counts), kind="stable")[: self.config.popular]
        self.newest_ = np.asarray(newest, dtype=np.int64)[: self.config.newest]
        return self

    def bound(self, model: Recommender) -> TwoStage:
        """This index in front of ``model`` (a copy of the model it was built from, say): shares the index."""
        stage = copy.copy(self)
        stage.model = model
        return stage

    def extended(self, model: Recommender) -> TwoStage:
        """A new stage for ``model``, which has more items than this index (added with no refit):
        the index cloned and given the new items' factors, so this stage is left as it was."""
        factors = model.item_factors()
        stage = self.bound(model)
        stage.index_ = self.index_.cloned()
        stage.index_.add(factors[self.n_items_:].detach().float().cpu().numpy())
        stage.n_items_ = factors.shape[0]
        added = np.arange(factors.shape[0] - 1, self.n_items_ - 1, -1)  # the newest arrivals, last added first
        stage.newest_ = np.concatenate([added, self.newest_])[: self.config.newest]
        return stage

    def write_index(self, folder: Path) -> None:
        """The index and the retrieval settings in ``folder`` (inside the facade's atomic save; the
        ranker itself is saved by its owner, so a bare TwoStage has no ``save`` of its own)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.index_.save(folder)
        (folder / CONFIG_FILE).write_text(json.dumps({"retrieval": asdict(self.config), "n_items": self.n_items_,
                                                      "newest": self.newest_.tolist()}))

    @classmethod
    def read_index(cls, folder: Path, model: Recommender, counts: np.ndarray) -> TwoStage:
        """The stage written to ``folder`` by :meth:`write_index` in front of ``model`` (``counts``
        rank the popular source)."""
        meta = json.loads((folder / CONFIG_FILE).read_text())
        stage = cls(model, meta["retrieval"])
        stage.index_ = AnnIndex.load(folder)
        if stage.index_.size != meta["n_items"] or meta["n_items"] != len(counts):
            raise ValueError(f"{folder}: the index holds {stage.index_.size} items, {CONFIG_FILE} says "
                             f"{meta['n_items']} and the model has {len(counts)}; the folder is inconsistent")
        stage.n_items_ = meta["n_items"]
        stage.popular_ = np.argsort(-np.asarray(counts), kind="stable")[: stage.config.popular]
        newest = meta.get("newest")
        if newest is None:  # written before the newest items were saved: the last indices, as then
            logger.info("%s has no newest items; using the last %d indices", folder / CONFIG_FILE, stage.config.newest)
            newest = np.arange(stage.n_items_ - 1, max(stage.n_items_ - stage.config.newest, 0) - 1, -1)
        stage.newest_ = np.asarray(newest, dtype=np.int64)
        if len(stage.newest_) and (stage.newest_.min() < 0 or stage.newest_.max() >= stage.n_items_):
            raise ValueError(f"{folder / CONFIG_FILE}: newest items outside the {stage.n_items_} items; the folder is inconsistent")
        return stage

    def chosen(self) -> dict[str, Any]:
        return {**self.model.chosen(), "retrieval": asdict(self.config)}

    def candidates(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """int64 [b, m] stage-1 items per user; -1 pads a row (a duplicate, or nothing found)."""
        queries = self.model.user_factors(users, history).detach().float().cpu().numpy()
        extra = min(int(np.diff(history.indptr).max(initial=0)), MAX_EXTRA)
        _, found = self.index_.search(queries, self.config.candidates + extra)
        fixed = np.concatenate([self.popular_, self.newest_])
        union = np.concatenate([found, np.broadcast_to(fixed, (len(found), len(fixed)))], axis=1)
        union = np.sort(union, axis=1)
        union[:, 1:][union[:, 1:] == union[:, :-1]] = -1  # duplicates
        return union

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, n_items]: the model's score on each row's candidates, -inf elsewhere."""
        union = self.candidates(users, history)
        valid = union >= 0
        scores = self.model.score_candidates(users, history, np.where(valid, union, 0)).float()
        out = torch.full((len(union), self.n_items_), -torch.inf, device=scores.device)
        rows, cols = np.nonzero(valid)
        out[torch.as_tensor(rows, device=out.device), torch.as_tensor(union[rows, cols], device=out.device)] = (
            scores[torch.as_tensor(rows, device=scores.device), torch.as_tensor(cols, device=scores.device)])
        return out
