"""``HybridRecommender``: the public face of the toolkit, with raw ids in and out.

    rec = HybridRecommender().fit(interactions, item_text)
    rec.recommend(["u42", "u7"], k=10)                # warm users, seen items filtered
    rec.recommend_for_history(["i3", "i19"], k=10)    # a new user with a few items, no refit
    rec.recommend_for_text("space operas", k=10)      # a zero-history user, from text
    rec.add_items({"i_new": "A quiet documentary about bees"})
    rec.save("model_dir"); HybridRecommender.load("model_dir")
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file, save_file
from typing_extensions import Self

from hybrid.config import from_dict
from hybrid.data.interactions import (
    BadInputError,
    Columns,
    Interactions,
    UnknownIdError,
    coerce_ids_like,
    item_texts,
    lookup_ids,
)
from hybrid.data.splits import last_n
from hybrid.device import resolve_device
from hybrid.explanations import Explaining
from hybrid.fusion.config import FusionConfig
from hybrid.fusion.explore import ExploreConfig, eligible_items, eligible_scores
from hybrid.fusion.explore import explore as explore_lists
from hybrid.fusion.halves import auto_names
from hybrid.fusion.model import FusionHybrid
from hybrid.metrics import mask_history
from hybrid.models.base import FitData
from hybrid.persistence import atomic_folder, verify_folder, write_manifest
from hybrid.retrieval.ranking import check_k
from hybrid.retrieval.two_stage import RetrievalConfig, TwoStage, newest_items, retrieval_config

logger = logging.getLogger(__name__)

IDS_FILE = "ids.json"
MANIFEST_KIND = "HybridRecommender"
HISTORY_FILE = "history.safetensors"
RETRIEVAL_DIR = "retrieval"


class HybridRecommender(Explaining):
    """Graph + text hybrid for warm users, new users and new items (see ``hybrid.fusion.model``).

    Args:
        config: model settings (a :class:`FusionConfig` or a dict of its fields).
        columns: which columns of the interaction table hold user, item, timestamp, weight.
        valid_per_user: each user's last n interactions are held out (with pseudo-new items) to
            fit the fusion gate; with ``refit`` (the default) the graph half then sees them all.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        seed: makes a CPU fit repeatable.
        retrieval: ``{"kind": "ann", "index": {...}, "candidates": 200, ...}``
            (:class:`~hybrid.retrieval.two_stage.RetrievalConfig`): :meth:`recommend` ranks the
            union of an ANN index's candidates (over the graph half's and the text vectors), the
            most popular and the newest items by the hybrid's score on those items alone, as a
            large catalogue needs; None or ``kind: exact`` scores every item. Saved with the model.
    """

    def __init__(
        self,
        config: FusionConfig | dict[str, Any] | None = None,
        columns: Columns = Columns(),
        valid_per_user: int = 1,
        device: str = "auto",
        seed: int = 0,
        retrieval: RetrievalConfig | dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.columns = columns
        self.valid_per_user = valid_per_user
        self.device = device
        self.seed = seed
        self.retrieval = retrieval

    def fit(
        self,
        interactions: Any,
        item_text: Mapping[Any, str] | pd.Series | pd.DataFrame,
        text_columns: Sequence[str] | None = None,
        template: str | None = None,
        id_column: str | None = None,
        user_text: Mapping[Any, str] | pd.Series | None = None,
    ) -> Self:
        """Learn from an interaction table (DataFrame, CSV/Parquet path or ``datasets.Dataset``) and item text.

        Items that have text but no interactions join the catalogue as cold items. ``user_text``
        (user id -> side information as text, e.g. "A 25-34-year-old female artist.") trains the
        user-side content path that :meth:`recommend_for_user` uses for new users' profiles.
        """
        config = self.config if isinstance(self.config, FusionConfig) else from_dict(FusionConfig, self.config, "config")
        retrieval = retrieval_config(self.retrieval)
        if retrieval.kind == "ann" and config.warm_model == "auto" and "ease" in auto_names(config.auto_warm):
            config = dataclasses.replace(config, auto_warm=tuple(n for n in auto_names(config.auto_warm) if n != "ease")
                                         or ("gf_cf",))
            logger.info("retrieval: ann: the graph half is chosen among %s (EASE has no item vectors to index)",
                        list(config.auto_warm))
        data = Interactions.build(interactions, self.columns)
        text_ids = _text_ids(item_text, id_column)
        extra = coerce_ids_like(text_ids, data.item_ids).difference(data.item_ids) if text_ids is not None else pd.Index([])
        item_ids = data.item_ids.append(extra)
        frame = data.to_frame()
        train_frame, valid_frame = last_n(frame, self.valid_per_user, self.seed, min_keep=1)
        train = Interactions.from_frame(train_frame, user_ids=data.user_ids, item_ids=item_ids)
        valid = None
        if len(valid_frame):
            valid = Interactions.from_frame(valid_frame, user_ids=data.user_ids, item_ids=item_ids)
        texts = item_texts(item_text, item_ids, text_columns, template, id_column)
        blank = [i for i, t in zip(extra, texts[len(data.item_ids):], strict=True) if not t]
        if blank:
            raise ValueError(f"items {blank[:10]} have no interactions and empty text: nothing to rank them by")
        device = resolve_device(self.device)
        profiles = None
        if user_text is not None:
            given = pd.Series(dict(user_text) if isinstance(user_text, Mapping) else user_text)
            given.index = coerce_ids_like(pd.Index(given.index), data.user_ids)
            profiles = given.reindex(data.user_ids).fillna("").astype(str).tolist()
        self.model_ = FusionHybrid(config).fit(
            FitData(train=train, valid=valid, item_text=texts, user_text=profiles, device=device, seed=self.seed)
        )
        self.user_ids_ = data.user_ids
        self.item_ids_ = item_ids
        self.history_ = sp.csr_matrix(
            (np.ones(len(data), np.float32), (data.users, data.items)), shape=(len(data.user_ids), len(item_ids))
        )
        self.stage_ = None if retrieval.kind == "exact" else TwoStage(self.model_, retrieval).build(
            self.model_.counts_, newest_items(train, len(item_ids), retrieval.newest, valid))
        return self

    # ------------------------------------------------------------------ recommending
    def recommend(
        self, users: Any, k: int = 10, filter_seen: bool = True, items: Sequence[Any] | None = None,
        explore: ExploreConfig | dict[str, Any] | None = None, step: int = 0, explain: bool = False,
    ) -> tuple[Any, ...]:
        """Top-k (item ids, scores) for known users: 1-D for one user id, 2-D for a list.

        ``items`` restricts the ranking to those item ids, e.g. a "new arrivals" row where new
        items need not compete with established ones. ``explore`` (an
        :class:`~hybrid.fusion.explore.ExploreConfig` or a dict of its fields) gives up to
        ``slots`` places to new or sparse items so they earn history, and then a third array says
        which places are exploratory; ``step`` varies its random draws between calls. ``explain``
        adds a last part: each listed item's explanation dict (:mod:`hybrid.explanations`).
        """
        if explore is not None and not isinstance(explore, ExploreConfig):
            explore = from_dict(ExploreConfig, explore, "explore")
        self._check_fitted()
        single = np.ndim(users) == 0
        index = lookup_ids(self.user_ids_, [users] if single else list(users), "user")
        candidates = None
        if items is not None:
            candidates = np.unique(lookup_ids(self.item_ids_, list(items), "item"))
            if len(candidates) == 0:
                raise BadInputError("items is empty; pass None to rank every item")
        k = min(check_k(k), self._room(index, candidates, filter_seen))
        ranker = self.model_
        if self.stage_ is not None and candidates is None:  # items= is a short list: scored exactly
            ranker = self.stage_.bound(self.model_)
            if k > self.stage_.config.candidates:
                raise BadInputError(f"k={k} exceeds retrieval.candidates={self.stage_.config.candidates}, what the "
                                 "index proposes per user; ask for fewer or raise retrieval.candidates")
        top, scores, reasons = self.ranked(ranker, index, k, filter_seen, candidates, explain and explore is None)
        if not np.isfinite(scores).all():
            raise ValueError("the model returned non-finite scores; refusing to recommend from them")
        out: tuple[np.ndarray, ...] = (top, scores)
        if explore is not None:
            allowed = None if candidates is None else np.isin(np.arange(len(self.item_ids_)), candidates)
            eligible = eligible_items(self.model_.counts_, explore, allowed)
            wide = eligible_scores(self.model_, index, self.history_, eligible, filter_seen)
            out = explore_lists(top, scores, eligible, wide, self.model_.counts_, explore, step)
        if explain:
            out = (*out, reasons if reasons is not None else
                   self.explained_lists(index, out[0], top, two_stage=ranker is not self.model_))
        out = (self.item_ids_.to_numpy()[out[0]], *out[1:])
        return tuple(part[0] for part in out) if single else out

    def recommend_for_history(self, items: Sequence[Any], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """A new user who names a few items: folded in by the graph half and read by the text
        signals (with up to 4 items, through the new-user gate), no refit."""
        items = list(items)
        if not items:
            raise BadInputError("items is empty; use recommend_for_text or recommend_for_user for a user with no history")
        return self.recommend_for_user(items=items, k=k)

    def recommend_for_user(self, profile: str | None = None, items: Sequence[Any] = (), k: int = 10,
                           ) -> tuple[np.ndarray, np.ndarray]:
        """A new user with side information and/or a few items, no refit.

        ``profile`` is their side information as text, in the form the fitted users' was given
        (e.g. "A 25-34-year-old female artist." or "age: 31, occupation: nurse"): it drives the
        user-side content path and the text profile; ``items`` are items they named or used.
        Both together get both signals (the new-user gates of ``hybrid.fusion.new_users``).
        """
        self._check_fitted()
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            raise BadInputError("profile must be a non-empty string of side information, or None")
        index = lookup_ids(self.item_ids_, list(items), "item")
        if profile is None and len(index) == 0:
            raise BadInputError("give a profile, items, or both: with neither there is nothing to go on "
                             "(use recommend_for_text for a description of tastes)")
        history = sp.csr_matrix((np.ones(len(index), np.float32), (np.zeros(len(index), int), index)),
                                shape=(1, len(self.item_ids_)))
        with torch.inference_mode():
            if len(index) == 0:  # the one zero-history path, recommend_for_text's too
                scores = self.model_.score_text(profile, len(self.item_ids_))
            else:  # with items, the profile signal reads the items
                side = None if profile is None else self.model_.text_vectors([profile])
                scores = self.model_.score_users(np.array([-1]), history, side=side)
        return self._rank(scores, history, k)

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """"More like this": for each item, the items a user who liked only it would be shown
        (graph and text together, so new items come by their text); the item itself excluded.
        1-D for one id, 2-D for a list."""
        self._check_fitted()
        single = np.ndim(items) == 0
        index = lookup_ids(self.item_ids_, [items] if single else list(items), "item")
        if len(index) == 0:
            raise BadInputError("items is empty")
        k = min(check_k(k), len(self.item_ids_) - 1)
        rows = sp.csr_matrix((np.ones(len(index), np.float32), (np.arange(len(index)), index)),
                             shape=(len(index), len(self.item_ids_)))
        with torch.inference_mode():
            scores = mask_history(self.model_.score(np.full(len(index), -1), rows).clone(), rows)
            values, top = torch.topk(scores, k, dim=1)
        ids, values = self.item_ids_.to_numpy()[top.cpu().numpy()], values.cpu().numpy()
        return (ids[0], values[0]) if single else (ids, values)

    def partial_fit(self, interactions: Any) -> Self:
        """Fold new interactions in without a full refit: new users join, known users' histories
        grow, and the graph half is refitted on everything (seconds for a graph filter; a full
        training for LightGCN / MF). The gate keeps what it learnt; new items must be added with
        :meth:`add_items` first (their text is what ranks them until they have interactions)."""
        self._check_fitted()
        new = Interactions.build(interactions, self.columns)
        unknown = new.item_ids[~new.item_ids.isin(self.item_ids_)]
        if len(unknown):
            raise UnknownIdError(f"unknown item ids {list(unknown[:5])} ({len(unknown)} in all); "
                                 "add them with add_items(...) first, so they have text")
        new_users = new.user_ids[~new.user_ids.isin(self.user_ids_)]
        users = self.user_ids_.append(new_users)
        rows, cols = users.get_indexer(new.user_ids[new.users]), self.item_ids_.get_indexer(new.item_ids[new.items])
        old = self.history_.tocoo()
        history = sp.csr_matrix((np.ones(old.nnz + len(rows), np.float32), (np.r_[old.row, rows], np.r_[old.col, cols])),
                                shape=(len(users), len(self.item_ids_)))
        history.data[:] = 1.0  # duplicates summed above: back to a binary history
        self.model_.refit_graph(history)
        if self.stage_ is not None:  # new graph factors: the index is rebuilt
            self.stage_ = TwoStage(self.model_, self.stage_.config).build(self.model_.counts_, self.stage_.newest_)
        self.user_ids_, self.history_ = users, history
        logger.info("partial_fit: %d interactions (%d new users); the graph half refitted on %d", len(new),
                    len(new_users), history.nnz)
        return self

    def recommend_for_text(self, text: str, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """A zero-history user described by text (onboarding answers, a profile): the list
        ``recommend_for_user(profile=text, k=k)`` gives, one zero-history path
        (:meth:`~hybrid.fusion.model.FusionHybrid.score_text`: the new-user gate or its floor)."""
        self._check_fitted()
        if not isinstance(text, str) or not text.strip():
            raise BadInputError("text must be a non-empty string describing what the user likes")
        return self.recommend_for_user(profile=text, k=k)

    def _room(self, users: np.ndarray, candidates: np.ndarray | None, filter_seen: bool) -> int:
        """How many items every one of ``users`` may still be shown: k is capped at it, so no list
        holds a seen item or an item outside ``items=``; 0 for someone is an error naming them."""
        allowed = np.ones(len(self.item_ids_), bool) if candidates is None else np.isin(
            np.arange(len(self.item_ids_)), candidates)
        room = np.full(len(users), int(allowed.sum()))
        if filter_seen:
            room -= (self.history_[users][:, np.flatnonzero(allowed)] > 0).getnnz(axis=1)
        if (room == 0).any():
            stuck = self.user_ids_.to_numpy()[users[room == 0][:5]].tolist()
            raise BadInputError(f"users {stuck} have seen every item that may be recommended; "
                             "nothing is left to rank (pass filter_seen=False, or more items=)")
        return int(room.min())

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this HybridRecommender is not fitted yet: call fit(interactions, item_text) "
                                 "or HybridRecommender.load(folder) first")

    def _rank(self, scores: torch.Tensor, history: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            scores = mask_history(scores.clone(), history)
            values, top = torch.topk(scores[0], min(check_k(k), scores.shape[1] - history.nnz))
        return self.item_ids_.to_numpy()[top.cpu().numpy()], values.cpu().numpy()

    def copy(self) -> HybridRecommender:
        """A copy sharing every fitted array. ``add_items`` and ``partial_fit`` replace arrays and
        never change them in place, so the copy can be updated while the original keeps serving."""
        self._check_fitted()
        clone = copy.copy(self)
        clone.model_ = copy.copy(self.model_)
        return clone

    # ------------------------------------------------------------------ catalogue
    def add_items(self, item_text: Mapping[Any, str]) -> Self:
        """Add catalogue items with no interactions (scored from their text alone), no refit.

        Ids are spelt as the catalogue's (as the server spells JSON ids): "7" is item 7 where the
        ids are integers and 7 is "7" where they are strings, so one item cannot enter twice."""
        self._check_fitted()
        if not isinstance(item_text, Mapping):
            raise BadInputError(f"item_text must map each new item id to its text, got {type(item_text).__name__}")
        new = coerce_ids_like(pd.Index(list(item_text)), self.item_ids_)
        twice = new[new.duplicated()].unique()
        if len(twice):
            raise BadInputError(f"item ids {list(twice[:5])} are given twice (spelt as the catalogue's ids); "
                                "give each new item once")
        clash = new[new.isin(self.item_ids_)]
        if len(clash):
            raise BadInputError(f"item ids {list(clash[:5])} already exist; add_items takes new items only")
        texts = list(item_text.values())
        empty = [i for i, t in zip(new, texts, strict=True) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise BadInputError(f"items {empty[:5]} have empty text; a new item needs text to be scored")
        self.model_.add_items(texts)
        if self.stage_ is not None:
            self.stage_ = self.stage_.extended(self.model_)
        self.item_ids_ = self.item_ids_.append(new)
        self.history_ = sp.hstack([self.history_, sp.csr_matrix((self.history_.shape[0], len(new)))], format="csr")
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the model (safetensors + JSON, the encoder named, not copied), the id maps and the
        seen items, atomically: a crash or a full disk mid-save leaves the previous folder as it was."""
        with atomic_folder(path) as folder:
            self.model_.write(folder)
            ids = {"users": _plain(self.user_ids_), "items": _plain(self.item_ids_), "seed": self.seed,
                   "valid_per_user": self.valid_per_user, "columns": dataclasses.asdict(self.columns)}
            (folder / IDS_FILE).write_text(json.dumps(ids))
            save_file({"indptr": self.history_.indptr.astype(np.int64),
                       "indices": self.history_.indices.astype(np.int64)}, str(folder / HISTORY_FILE))
            if self.stage_ is not None:
                self.stage_.write_index(folder / RETRIEVAL_DIR)
            write_manifest(folder, MANIFEST_KIND, {"users": [len(self.user_ids_)], "items": [len(self.item_ids_)]})

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> HybridRecommender:
        """Read a folder written by :meth:`save`; it recommends as the saved one did. Every file
        is checked first (present, checksum, shapes against the id maps): a ``ValueError`` names
        the one at fault, and nothing is half-loaded."""
        path = Path(path)
        verify_folder(path, MANIFEST_KIND)
        ids = json.loads((path / IDS_FILE).read_text())
        model = FusionHybrid.read(path, resolve_device(device))
        users, items = pd.Index(ids["users"]), pd.Index(ids["items"])
        if len(items) != model.text_.shape[0]:
            raise ValueError(f"{path / IDS_FILE} names {len(items)} items, the model has {model.text_.shape[0]}; "
                             "the folder is inconsistent")
        arrays = load_file(str(path / HISTORY_FILE))
        indptr, indices = arrays["indptr"], arrays["indices"]
        if len(indptr) != len(users) + 1 or (len(indices) and (indices.min() < 0 or indices.max() >= len(items))):
            raise ValueError(f"{path / HISTORY_FILE} does not fit the {len(users)} users and {len(items)} items of "
                             f"{path / IDS_FILE}; the folder is inconsistent")
        columns = Columns(**ids["columns"]) if "columns" in ids else Columns()  # partial_fit reads the same names
        rec = cls(columns=columns, valid_per_user=ids["valid_per_user"], device=device, seed=ids["seed"])
        rec.model_, rec.config = model, model.config
        rec.stage_ = None
        if (path / RETRIEVAL_DIR).is_dir():
            rec.stage_ = TwoStage.read_index(path / RETRIEVAL_DIR, model, model.counts_)
            rec.retrieval = rec.stage_.config
        rec.user_ids_, rec.item_ids_ = users, items
        rec.history_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(users), len(items)))
        return rec


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted model was called before ``fit`` (as scikit-learn's)."""


def _text_ids(item_text: Any, id_column: str | None) -> pd.Index | None:
    if isinstance(item_text, pd.DataFrame):
        return pd.Index(item_text[id_column] if id_column else item_text.index)
    if isinstance(item_text, pd.Series | Mapping):
        return pd.Index(list(item_text.keys()))
    return None


def _plain(index: pd.Index) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in index]
