"""A split turned into what every model of a run shares: indexed matrices, test users, groups."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from hybrid.config import ExperimentConfig
from hybrid.data.buckets import NAMES, bucket_labels
from hybrid.data.catalogue import catalogue_at, catalogue_ids, filter_ratings, filter_training
from hybrid.data.datasets import DataBundle, load_dataset, load_files
from hybrid.data.interactions import ITEM, ORDER, USER, Interactions, item_texts
from hybrid.data.splits import Split, make_split
from hybrid.data.written import known_written, with_written
from hybrid.models.base import FitData
from hybrid.retrieval.candidates import draw_candidates

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A split turned into indexed matrices, shared by every model of one run."""

    split: Split
    fit_data: FitData
    history: sp.csr_matrix  # [n_users, n_items] known at test time (train + valid + revealed)
    test: sp.csr_matrix  # [n_users, n_items]
    users: np.ndarray  # evaluated user indices
    groups: dict[str, tuple[np.ndarray, np.ndarray | None]]  # name -> (row mask over users, item mask)
    candidates: np.ndarray | None = None  # [n_users_evaluated, m] for the LLMRank protocol
    # name -> bool item mask [n_items]: rankings among those items only (cold_only / warm_only),
    # scored against the test items among them.
    restricted: dict[str, np.ndarray] = field(default_factory=dict)
    # What the catalogue at the cut left out: test interactions, items and users of items not yet
    # listed (unreachable), and items of the data's table not yet listed.
    unreachable: dict[str, int] = field(default_factory=dict)

    @functools.cached_property
    def fit_fingerprint(self) -> str:
        """:func:`fingerprint` of ``fit_data``, hashed once for every model row that needs it."""
        return fingerprint(self.fit_data)


def canonical_frame(bundle: DataBundle) -> pd.DataFrame:
    """The bundle's interactions validated and de-duplicated (:class:`Interactions`), with the
    source's ``order`` column kept (its first position per pair) where it has one."""
    frame = Interactions.from_frame(bundle.interactions).to_frame()
    if ORDER in bundle.interactions.columns:
        first = bundle.interactions.groupby([USER, ITEM])[ORDER].min()
        frame[ORDER] = first.reindex(pd.MultiIndex.from_frame(frame[[USER, ITEM]])).to_numpy()
    return frame


def prepare(bundle: DataBundle, config: ExperimentConfig, device: torch.device) -> Prepared:
    """Validate the data, split it, and index every part over the catalogue (every user and item of
    the data set, :mod:`hybrid.data.catalogue`); filters see the training side only."""
    every = canonical_frame(bundle)
    frame = filter_ratings(every, config.data)
    test_frame = None if bundle.test is None else bundle.test.rename(columns=str)
    split = filter_training(make_split(frame, config.split, test_frame), config.data)
    return prepare_split(bundle, every, split, config, device)


def prepare_split(bundle: DataBundle, every: pd.DataFrame, split: Split, config: ExperimentConfig,
                  device: torch.device) -> Prepared:
    """Index one split over the catalogue as it stood at the split's cut: user-written text of the
    training period only (:mod:`hybrid.data.written`), and on a split by time the items listed by
    then (:func:`~hybrid.data.catalogue.catalogue_at`); test rows of items not yet listed are
    unreachable, counted in ``Prepared.unreachable`` and left out of the test."""
    user_table = None if bundle.user_text is None else bundle.user_text.index
    user_ids, item_ids = catalogue_ids(every, bundle.item_text.index, user_table)
    listed = len(item_ids)
    if split.cut is not None and not bundle.independent_catalogue:
        item_ids = catalogue_at(item_ids, every, split.cut)
    split, unreachable = reachable(split, item_ids)
    item_text = bundle.item_text
    if bundle.written is not None:
        known = pd.concat([split.train[[USER, ITEM]], split.valid[[USER, ITEM]]])
        item_text = with_written(item_text, known_written(bundle.written, known, every, split.cut),
                                 bundle.written_label)

    def index(part: pd.DataFrame) -> Interactions | None:
        if len(part) == 0:
            return None
        return Interactions.from_frame(part, user_ids=user_ids, item_ids=item_ids)

    train = index(split.train)
    assert train is not None  # Split refuses an empty train set
    valid, revealed, test = index(split.valid), index(split.revealed), index(split.test)
    assert test is not None
    history = train.matrix()
    for part in (valid, revealed):
        if part is not None:
            history = history + part.matrix()
    history = (history > 0).astype(np.float32).tocsr()
    user_text = None
    if bundle.user_text is not None:
        user_text = bundle.user_text.reindex(user_ids).fillna("").astype(str).tolist()
    fit_data = FitData(
        train=train, valid=valid, item_text=item_texts(item_text, item_ids),
        item_titles=bundle.item_titles.reindex(item_ids).fillna("").astype(str).tolist(),
        user_text=user_text, device=device, seed=config.seed,
    )
    test_matrix = test.matrix()
    users = np.flatnonzero(np.diff(test_matrix.indptr) > 0)
    if config.eval.cold_users_only:
        users = users[known_counts(fit_data, "user")[users] == 0]
        logger.info("evaluating only the %d test users with no training interactions", len(users))
    if config.eval.max_users is not None and len(users) > config.eval.max_users:
        rng = np.random.default_rng(config.seed)
        users = np.sort(rng.choice(users, config.eval.max_users, replace=False))
        logger.info("evaluating a seeded sample of %d test users (same for every model)", len(users))
    candidates = None
    if config.eval.candidates:
        candidates = draw_candidates(users, split.test, train, history, test_matrix, config.eval.candidates, config.seed)
    counts = known_counts(fit_data, "item")
    groups = _groups(split, counts, train.user_ids, users, np.diff(history.indptr)[users])
    return Prepared(split, fit_data, history, test_matrix, users, groups, candidates, _restricted(split, counts),
                    {**unreachable, "not_yet_listed": listed - len(item_ids)})


def reachable(split: Split, item_ids: pd.Index) -> tuple[Split, dict[str, int]]:
    """``split`` without the test rows of items outside the catalogue ``item_ids`` (they cannot
    be recommended at the cut), and their count: interactions, items and users."""
    out = ~split.test[ITEM].isin(item_ids)
    counts = {"unreachable_interactions": int(out.sum()), "unreachable_items": int(split.test[ITEM][out].nunique()),
              "unreachable_users": int(split.test[USER][out].nunique())}
    if not out.any():
        return split, counts
    logger.info("%d test interactions (%d items) are with items not yet listed at the cut: unreachable, "
                "counted and left out of the test", counts["unreachable_interactions"], counts["unreachable_items"])
    test = split.test[~out].reset_index(drop=True)
    return dataclasses.replace(split, test=test, cold_items=split.cold_items & frozenset(test[ITEM]),
                               cold_users=split.cold_users & frozenset(test[USER])), counts


def known_counts(data: FitData, axis: Literal["user", "item"]) -> np.ndarray:
    """int64 per user or item: interactions in train + validation (what every model may fit on);
    zero is what "new" / "cold" means in every report."""
    count = (lambda part: part.user_counts()) if axis == "user" else (lambda part: part.item_counts())
    total = count(data.train)
    return total if data.valid is None else total + count(data.valid)


def catalogue_record(prepared: Prepared) -> dict[str, int]:
    """``results.json``'s ``catalogue``: items at the cut, new items (no training interaction),
    unsold new items (new, and no test interaction: the new items nobody buys), and what the
    catalogue at the cut left out (:attr:`Prepared.unreachable`)."""
    new = known_counts(prepared.fit_data, "item") == 0
    bought = np.asarray(prepared.test.getnnz(axis=0)).ravel() > 0
    return {"items": len(new), "new_items": int(new.sum()), "unsold_new_items": int((new & ~bought).sum()),
            **prepared.unreachable}


# Users by their known interactions at scoring time: 0 is a zero-history user.
USER_BUCKETS = (("0", 0, 0), ("1-4", 1, 4), ("5-19", 5, 19), ("20+", 20, np.iinfo(np.int64).max))


def _groups(split: Split, counts: np.ndarray, user_ids: pd.Index, users: np.ndarray,
            user_known: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Which (users, items) each reported group covers, by train + validation ``counts`` per item
    and by each evaluated user's known interactions (``user_known``, aligned with ``users``).
    Cold-user splits group warm / cold by user, others by item."""
    every_user = np.ones(len(users), bool)
    groups: dict[str, tuple[np.ndarray, np.ndarray | None]] = {"all": (every_user, None)}
    if split.cold_axis == "user":
        cold_rows = np.isin(user_ids[users], list(split.cold_users))
        groups["warm"], groups["cold"] = (~cold_rows, None), (cold_rows, None)
    elif split.cold_items:
        groups["warm"], groups["cold"] = (every_user, counts > 0), (every_user, counts == 0)
    labels = bucket_labels(counts)
    for name in NAMES:
        groups[f"bucket:{name}"] = (every_user, labels == name)
    for name, low, high in USER_BUCKETS:
        groups[f"user:{name}"] = ((user_known >= low) & (user_known <= high), None)
    return groups


def _restricted(split: Split, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The item masks of the ALDI/GAR protocols on a split with cold items: ``cold_only`` ranks the
    items with no train + validation interaction among themselves (unsold new items included),
    ``warm_only`` the others; none otherwise."""
    if split.cold_axis != "item" or not split.cold_items:
        return {}
    return {"cold_only": counts == 0, "warm_only": counts > 0}


def fingerprint(data: FitData) -> str:
    """A digest of what fitting sees (interactions, id maps, texts, seed, device): equal digests,
    equal fitted models."""
    digest = hashlib.sha256()
    for part in (data.train, data.valid):
        if part is not None:
            for array in (part.users, part.items):
                digest.update(np.ascontiguousarray(array).tobytes())
            digest.update("\x1f".join(map(str, [*part.user_ids, *part.item_ids])).encode())
    for texts in (data.item_text, data.item_titles, data.user_text):
        digest.update(b"\x1e" + "\x1f".join(texts or []).encode())
    digest.update(f"{data.seed} {data.device}".encode())
    return digest.hexdigest()


def load_bundle(config: ExperimentConfig, data_root: str | None) -> DataBundle:
    """The config's data: its own files (``data.interactions``) or a named data set under ``data_root``."""
    if config.data.interactions is not None:
        return load_files(config.data)
    return load_dataset(config.data.name, data_root, config.data.path)
