"""Why this item: the hybrid's score of (user, item) taken apart along the path it actually took.

    score(u, i) = b[β(n_i)] + Σ_f w_f[β(n_i)] · z_f(u, i)

An :class:`ExplainedRow` holds, for one user's items, each item's count bucket β, each signal's
contribution w_f · z_f and the bias (they sum to the score the ranking used: the same signals,
read from :meth:`FusionHybrid.signal_rows`, or from the very rows the ranking fused where the
caller passes them), and the user's items that support each item most:

* graph support: each known item j's graph score of i were j the user's only item (what
  ``similar_items`` ranks by: a graph filter's item-item relation; for an embedding half the dot
  product of the two items' vectors, where its fold-in starts), for items the graph knows
  (bucket > 0; a new item has no graph score); every known item where the half has item-item
  weights (EASE) or item vectors (a dot product), the first ``MAX_HISTORY`` by index where it
  scores each one-item history (a graph filter's ``score_columns``);
* text support: the cosine of j's and i's text vectors, what the text signals read; for a new
  item (bucket 0) it says which of the user's items its text resembles.

A user the new-user path scores is explained by their gate (with the ``side`` signal), or, with no
items and the zero-history floor's prior (:mod:`hybrid.fusion.floor`), by that prior alone:
``path`` says which. The numbers are computed as arrays, one batch at a time, and turned into
dicts (:meth:`ExplainedRow.to_dicts`) only at the end (benchmarks/explain_cost.py measures what
that costs against ranking). Explanations only read the model; nothing here changes a score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.buckets import NAMES
from hybrid.fusion.candidates import column_signal_rows
from hybrid.fusion.new_users import NEW_USER_FEATURES, NewUserPath, SignalRows
from hybrid.fusion.signals import FEATURES
from hybrid.models.base import Recommender

MAX_SUPPORT = 3  # supporting items kept per kind
MAX_HISTORY = 256  # known items scored one by one for graph support by ``score_columns`` (the first by index)
GRAPH_SIGNALS = ("graph", "text_graph")  # what graph support backs in ``because``
SUPPORTED_BY_TEXT = ("profile", "text_knn", "text_graph")  # what text support backs (text_graph: where no graph support)


class FusionHybrid(Protocol):
    """What this module reads of a fitted hybrid (:class:`hybrid.fusion.model.FusionHybrid`)."""

    device_: torch.device
    text_: torch.Tensor
    warm_: Recommender
    buckets_: torch.Tensor
    gate_weight_: torch.Tensor
    gate_bias_: torch.Tensor
    new_users_: NewUserPath

    @property
    def warm_items_(self) -> int: ...

    def signal_rows(self, users: np.ndarray, history: sp.csr_matrix, side: torch.Tensor | None = None,
                    profiles: torch.Tensor | None = None) -> SignalRows: ...


@dataclasses.dataclass
class Supports:
    """The user's items behind each of a row's k items: ``items`` int64 [k, MAX_SUPPORT] (-1 past
    ``count``), ``values`` their graph scores or text cosines with the item, ``shares`` each one's
    part of the positive values of all the user's items."""

    items: np.ndarray
    values: np.ndarray
    shares: np.ndarray
    count: np.ndarray

    @classmethod
    def none(cls, k: int) -> Supports:
        return cls(np.full((k, MAX_SUPPORT), -1), np.zeros((k, MAX_SUPPORT)), np.zeros((k, MAX_SUPPORT)), np.zeros(k, np.int64))

    def first(self, k: int) -> Supports:
        """The supports of the first ``k`` items (a row padded to a batch's widest)."""
        return Supports(self.items[:k], self.values[:k], self.shares[:k], self.count[:k])

    def dicts(self, item_ids: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per item, its supports as {"item": id, "value", "share"} (ids through ``item_ids``)."""
        ids = item_ids[np.maximum(self.items, 0)].tolist()
        values, shares = self.values.tolist(), self.shares.tolist()
        return [[{"item": ids[n][j], "value": values[n][j], "share": shares[n][j]} for j in range(c)] if c else []
                for n, c in enumerate(self.count.tolist())]


@dataclasses.dataclass
class ExplainedRow:
    """Why each of ``items`` (indices in the model) is scored as it is for one user.

    Attributes:
        items: int64 [k].
        path: "item gate", "new-user gate <bucket>[ no side]" or "zero-history prior <kind>"
            (" (two-stage)" added where the signals are the two-stage ranker's).
        features: the signals' names; values: float64 [k, F] the standardised values z;
            contributions: float64 [k, F] weight × value; bias: float64 [k] the item's bucket's bias;
            buckets: int64 [k] the items' count buckets (:data:`hybrid.data.buckets.NAMES`).
            ``bias + contributions.sum(1)`` is the score.
        graph, text: the user's items that support each item most (:class:`Supports`).
        known_items: how many items the user has (0: the ``profile`` signal read their profile text).
    """

    items: np.ndarray
    path: str
    features: tuple[str, ...]
    values: np.ndarray
    contributions: np.ndarray
    bias: np.ndarray
    buckets: np.ndarray
    graph: Supports
    text: Supports
    known_items: int

    @property
    def scores(self) -> np.ndarray:
        return self.bias + self.contributions.sum(1)

    def to_dicts(self, user_id: Any, item_ids: np.ndarray) -> list[dict[str, Any]]:
        """One JSON-able dict per item (ids through ``item_ids``): user, item, score, bucket, path,
        bias, contributions, values, graph_support, text_support, known_items and ``because``."""
        user_id = user_id.item() if isinstance(user_id, np.generic) else user_id  # JSON-able
        ids, scores, bias = item_ids[self.items].tolist(), self.scores.tolist(), self.bias.tolist()
        contributions, values, buckets = self.contributions.tolist(), self.values.tolist(), self.buckets.tolist()
        graph, text = self.graph.dicts(item_ids), self.text.dicts(item_ids)
        ranked = np.argsort(-self.contributions, axis=1, kind="stable")[:, :3].tolist()
        out = []
        for n, item in enumerate(ids):
            parts = dict(zip(self.features, contributions[n], strict=True))
            line = because([(self.features[f], contributions[n][f]) for f in ranked[n]], graph[n], text[n],
                           self.known_items, self.path, bias[n])
            out.append({"user": user_id, "item": item, "score": scores[n], "bucket": NAMES[buckets[n]],
                        "path": self.path, "bias": bias[n], "contributions": parts,
                        "values": dict(zip(self.features, values[n], strict=True)), "graph_support": graph[n],
                        "text_support": text[n], "known_items": self.known_items, "because": line})
        return out


def because(ranked: list[tuple[str, float]], graph: list[dict[str, Any]], text: list[dict[str, Any]],
            known_items: int, path: str, bias: float) -> str:
    """A short line from the largest contributions (``ranked``: (signal, contribution), largest
    first; the positive ones are named), with the items behind them, e.g.
    "graph 0.62 (because you liked 3, 7); text_knn 0.21 (like 3)". ``side`` is always read
    from the user's profile; ``profile`` only where they have no items (else it reads them)."""
    parts = []
    for name, value in ranked:
        if value <= 0:
            break
        if name in GRAPH_SIGNALS and graph:
            parts.append(f"{name} {value:.2f} (because you liked {', '.join([str(s['item']) for s in graph])})")
        elif name in SUPPORTED_BY_TEXT and text:  # a new item: by its text
            parts.append(f"{name} {value:.2f} (like {', '.join([str(s['item']) for s in text])})")
        elif name == "side" or (name == "profile" and known_items == 0):  # the user's profile text
            parts.append(f"{name} {value:.2f} (from your profile)")
        elif path.startswith("zero-history prior"):
            parts.append(f"{name} {value:.2f} (no history yet: what most people take)")
        else:
            parts.append(f"{name} {value:.2f}")
    return "; ".join(parts) or f"{path}: no signal raises it (bias {bias:.2f})"


def explain_rows(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix, items: list[np.ndarray],
                 side: torch.Tensor | None = None, profiles: torch.Tensor | None = None,
                 two_stage: bool = False, rows: SignalRows | None = None) -> list[ExplainedRow]:
    """The explanation of each row's ``items`` (int64 item indices per row), the rows scored as
    :meth:`FusionHybrid.score_users` scores them (same arguments; ``rows``: the signal rows it
    fused, read instead of a second signal pass), or with ``two_stage`` as
    :meth:`FusionHybrid.score_candidates` does (signals standardised on the reference items, the
    scores a two-stage ranker lists; ``side`` and ``profiles`` not taken)."""
    users = np.asarray(users)
    buckets = model.buckets_.cpu().numpy()
    width = max((len(w) for w in items), default=0)
    wanted = np.zeros((len(items), width), np.int64)
    for r, w in enumerate(items):
        wanted[r, :len(w)] = w
    with torch.no_grad():
        cols = None
        if two_stage:
            rows, cols = column_signal_rows(model, users, history, np.unique(wanted))
        elif rows is None:
            rows = model.signal_rows(users, history, side, profiles)
        at = torch.as_tensor(wanted if cols is None else np.searchsorted(cols, wanted), device=model.device_)
        values = torch.stack([s.gather(1, at) for s in rows.signals]).double().cpu().numpy()  # [F, b, width]
        names = model.new_users_.gate_names(rows.known, rows.has_side) if len(rows.new_rows) else np.zeros(0, object)
        new_of = {int(r): n for n, r in enumerate(rows.new_rows)}
        gate = (FEATURES, model.gate_weight_.double().cpu().numpy(), model.gate_bias_.double().cpu().numpy())
        known = [np.sort(history.indices[history.indptr[r]:history.indptr[r + 1]][  # not history[r]: slow
            history.data[history.indptr[r]:history.indptr[r + 1]] > 0]).astype(np.int64) for r in range(len(items))]
        supports = _Relation(model, buckets).supports(known, wanted)
        out = []
        for r, w in enumerate(items):
            k = len(w)
            mine = wanted[r, :k]
            path, features, z, weight, bias = _path(model, rows, names, new_of.get(r), values[:, r, :k], at[r, :k],
                                                    mine, gate)
            b = buckets[mine]
            graph, text = (part.first(k) for part in supports[r])
            out.append(ExplainedRow(mine, path + ("" if cols is None else " (two-stage)"), features,
                                    z.T, (weight[:, b] * z).T, bias[b], b, graph, text, len(known[r])))
    return out


def _path(model: FusionHybrid, rows: SignalRows, names: np.ndarray, new: int | None, values: np.ndarray,
          at: torch.Tensor, wanted: np.ndarray, gate: tuple[tuple[str, ...], np.ndarray, np.ndarray],
          ) -> tuple[str, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(path, feature names, values float64 [F, k], weight [F, B], bias [B]) of one row's items
    ``wanted`` (``values`` read at columns ``at`` of the signals; ``new``: the row's place among
    ``rows.new_rows``, None for a known user), as :meth:`NewUserPath.fuse_rows` decides it."""
    if new is None:
        return ("item gate", *gate[:1], values, *gate[1:])
    path = model.new_users_
    if rows.known[new] == 0 and path.prior.scores is not None:  # the floor's prior replaced the gate
        prior = path.prior.scores.double().cpu().numpy()
        prior = np.pad(prior, (0, max(0, model.text_.shape[0] - len(prior))))[wanted]
        return (f"zero-history prior {path.prior.kind}", (path.prior.kind,), prior[None, :],
                np.ones((1, len(NAMES))), np.zeros(len(NAMES)))
    if names[new] not in path.gates:
        return ("item gate", *gate[:1], values, *gate[1:])
    side = rows.side[new, at].double().cpu().numpy()
    weight, bias = path.gates[names[new]]
    return (f"new-user gate {names[new]}", NEW_USER_FEATURES, np.vstack([values[:-1], side[None, :], values[-1:]]),
            weight.double().cpu().numpy(), bias.double().cpu().numpy())


class _Relation:
    """Graph and text support of a batch's rows (see the module docstring): each row's pairs of
    (known item, wanted item) scored row by row, the best few picked for the whole batch at once."""

    CHUNK = 1 << 22  # (rows × longest history × wanted) entries per selection: 16 MiB of float32

    def __init__(self, model: FusionHybrid, buckets: np.ndarray) -> None:
        self.model, self.buckets, self.n_warm = model, buckets, model.warm_items_
        self.cheap = _cheap_relation(model.warm_)

    def graph(self, known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """float [len(known), len(wanted)]: 0 where the graph half has no score (a new item)."""
        out = np.zeros((len(known), len(wanted)), np.float32)
        inside = np.flatnonzero(known < self.n_warm)
        if not self.cheap:  # one score_columns row per known item: capped
            inside = inside[:MAX_HISTORY]
        warm = np.flatnonzero((wanted < self.n_warm) & (self.buckets[wanted] > 0))
        if len(inside) and len(warm):
            out[inside[:, None], warm[None, :]] = \
                item_relation(self.model.warm_, known[inside], wanted[warm], self.n_warm).cpu().numpy()
        return out

    def supports(self, known: list[np.ndarray], wanted: np.ndarray) -> list[tuple[Supports, Supports]]:
        """Graph and text support of each row's ``wanted`` items [b, k] from its ``known`` items:
        rows taken in order of history length, so a chunk pads little."""
        lengths = np.array([len(m) for m in known])
        order = np.argsort(lengths, kind="stable")
        out: list[tuple[Supports, Supports] | None] = [None] * len(known)
        start = 0
        while start < len(order):
            longest = int(lengths[order[min(start + 63, len(order) - 1)]])  # of the next 64 rows
            size = max(1, self.CHUNK // max(1, longest * max(self.model.text_.shape[1], 2 * wanted.shape[1])))
            rows = order[start:start + min(64, size)]
            for r, found in zip(rows, self._chunk([known[r] for r in rows], wanted[rows]), strict=True):
                out[r] = found
            start += len(rows)
        return out  # type: ignore[return-value]

    def _chunk(self, known: list[np.ndarray], wanted: np.ndarray) -> list[tuple[Supports, Supports]]:
        b, k = wanted.shape
        longest = max((len(m) for m in known), default=0)
        if longest == 0:
            return [(Supports.none(k), Supports.none(k)) for _ in range(b)]
        values = np.zeros((2, b, k, longest), np.float32)  # graph, text; the known items last (contiguous)
        items = np.full((b, longest), -1)
        for r, mine in enumerate(known):
            items[r, :len(mine)] = mine
            if len(mine):
                values[0, r, :, :len(mine)] = self.graph(mine, wanted[r]).T
        text = self.model.text_  # the cosines in one product (a BLAS call per row would fight torch's threads)
        at = lambda index: text[torch.as_tensor(index, device=text.device)]  # noqa: E731
        values[1] = torch.bmm(at(wanted), at(np.maximum(items, 0)).transpose(1, 2)).cpu().numpy()
        values[1][np.broadcast_to(items[:, None, :] < 0, values[1].shape)] = 0
        values[:, items[:, None, :] == wanted[:, :, None]] = 0  # an item does not support itself
        np.maximum(values, 0, out=values)
        totals = values.sum(3)  # [2, b, k]
        top, order = torch.topk(torch.from_numpy(values), min(MAX_SUPPORT, longest), dim=3)
        top, order = top.double().numpy(), order.numpy()  # [2, b, k, S]
        tied = np.lexsort((order, -top), axis=3)  # equal values: the earlier known item first
        top, order = np.take_along_axis(top, tied, axis=3), np.take_along_axis(order, tied, axis=3)
        ids = np.where(top > 0, np.take_along_axis(items[None, :, None, :], order, axis=3), -1)
        if top.shape[3] < MAX_SUPPORT:  # fewer known items than places
            pad = ((0, 0),) * 3 + ((0, MAX_SUPPORT - top.shape[3]),)
            ids, top = np.pad(ids, pad, constant_values=-1), np.pad(top, pad)
        shares = np.divide(top, totals[..., None], out=np.zeros_like(top), where=totals[..., None] > 0)
        count = (top > 0).sum(3)
        return [(Supports(ids[0, r], top[0, r], shares[0, r], count[0, r]),
                 Supports(ids[1, r], top[1, r], shares[1, r], count[1, r])) for r in range(b)]


def item_relation(warm: Recommender, known: np.ndarray, wanted: np.ndarray, n_items: int) -> torch.Tensor:
    """float [len(known), len(wanted)]: the graph half's score of each wanted item for a user whose
    only item is each known one (of the half's ``n_items``): read off a half's own item-item
    weights where it has them (EASE's ``item_relation``), else from the wanted columns only where
    the half can (a graph filter's ``score_columns``); an embedding half's fold-in starts from the mean
    of the items' vectors, so there it is the dot product of the two items' vectors (before the
    fold-in's BPR steps)."""
    relation = getattr(warm, "item_relation", None)  # a half that holds its item-item weights (EASE)
    if relation is not None:
        return relation(known, wanted)
    if getattr(warm, "fold_in", None) is not None:
        factors = warm.item_factors()
        at = lambda items: factors[torch.as_tensor(items, device=factors.device)]  # noqa: E731
        return at(known) @ at(wanted).T
    alone = sp.csr_matrix((np.ones(len(known), np.float32), (np.arange(len(known)), known)), shape=(len(known), n_items))
    return warm.score_columns(np.zeros(len(known), np.int64), alone, wanted)


def _cheap_relation(warm: Recommender) -> bool:
    """Whether :func:`item_relation` reads the half's own weights or vectors (EASE, an embedding
    half: cheap for every known item) rather than scoring a one-item history per known item."""
    return getattr(warm, "item_relation", None) is not None or getattr(warm, "fold_in", None) is not None

