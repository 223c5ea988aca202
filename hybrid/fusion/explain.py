"""Why this item: the hybrid's score of (user, item) taken apart along the path it actually took.

    score(u, i) = b[β(n_i)] + Σ_f w_f[β(n_i)] · z_f(u, i)

An :class:`Explanation` holds the item's count bucket β, each signal's contribution w_f · z_f and
the bias (they sum to the score the ranking used: the same signals, read from
:meth:`FusionHybrid.signal_rows`), and the user's items that support it most:

* ``graph_support``: each known item j's graph score of i were j the user's only item (what
  ``similar_items`` ranks by: a graph filter's item-item relation; for an embedding half the dot
  product of the two items' vectors, where its fold-in starts), for items the graph knows
  (bucket > 0; a new item has no graph score); every known item where the half has item-item
  weights (EASE) or item vectors (a dot product), the first ``MAX_HISTORY`` by index where it
  scores each one-item history (a graph filter's ``score_columns``);
* ``text_support``: the cosine of j's and i's text vectors, what the text signals read; for a new
  item (bucket 0) it says which of the user's items its text resembles.

A user the new-user path scores is explained by their gate (with the ``side`` signal), or, with no
items and the zero-history floor's prior (:mod:`hybrid.fusion.floor`), by that prior alone:
``path`` says which. Explanations only read the model; nothing here changes a score.
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
GRAPH_SIGNALS = ("graph", "text_graph")  # what graph_support backs in ``because``
TEXT_SIGNALS = ("profile", "text_knn")  # what text_support backs


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


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclasses.dataclass
class Support:
    """One known item behind a recommendation: ``value`` its graph score or text cosine with the
    item, ``share`` its part of the positive values of all the user's items."""

    item: Any
    value: float
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"item": _plain(self.item), "value": self.value, "share": self.share}


@dataclasses.dataclass
class Explanation:
    """Why ``item`` is scored ``score`` for ``user`` (indices in the model, ids at the facade).

    Attributes:
        bucket: the item's count bucket (:data:`hybrid.data.buckets.NAMES`).
        path: "item gate", "new-user gate <bucket>[ no side]" or "zero-history prior <kind>".
        bias: the bucket's bias; contributions: signal -> weight × value; values: signal -> the
            standardised value z. ``bias + sum(contributions) == score``.
        graph_support, text_support: the user's items that support it most (:class:`Support`).
        known_items: how many items the user has (0: the ``profile`` signal read their profile text).
    """

    user: Any
    item: Any
    score: float
    bucket: str
    path: str
    bias: float
    contributions: dict[str, float]
    values: dict[str, float]
    graph_support: list[Support]
    text_support: list[Support]
    known_items: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (plain floats, ids as given)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["user"], out["item"] = _plain(self.user), _plain(self.item)
        out["graph_support"] = [s.to_dict() for s in self.graph_support]
        out["text_support"] = [s.to_dict() for s in self.text_support]
        out["because"] = self.because()
        return out

    def because(self, top: int = 3) -> str:
        """A short line: the largest positive contributions, with the items behind them, e.g.
        "graph 0.62 (because you liked 3, 7); text_knn 0.21 (like 3)". ``side`` is always read
        from the user's profile; ``profile`` only where they have no items (else it reads them)."""
        parts = []
        ranked = sorted(self.contributions.items(), key=lambda kv: -kv[1])
        for name, value in [kv for kv in ranked if kv[1] > 0][:top]:
            part = f"{name} {value:.2f}"
            if name in GRAPH_SIGNALS and self.graph_support:
                part += " (because you liked " + ", ".join(str(s.item) for s in self.graph_support) + ")"
            elif name in (*TEXT_SIGNALS, "text_graph") and self.text_support:  # a new item: by its text
                part += " (like " + ", ".join(str(s.item) for s in self.text_support) + ")"
            elif name == "side" or (name == "profile" and self.known_items == 0):  # the user's profile text
                part += " (from your profile)"
            elif self.path.startswith("zero-history prior"):
                part += " (no history yet: what most people take)"
            parts.append(part)
        return "; ".join(parts) or f"{self.path}: no signal raises it (bias {self.bias:.2f})"

    def with_ids(self, user: Any, item_ids: np.ndarray) -> Explanation:
        """The same explanation with ``user`` and item indices mapped through ``item_ids``."""
        def mapped(supports: list[Support]) -> list[Support]:
            return [dataclasses.replace(s, item=_plain(item_ids[s.item])) for s in supports]
        return dataclasses.replace(self, user=_plain(user), item=_plain(item_ids[self.item]),
                                   graph_support=mapped(self.graph_support), text_support=mapped(self.text_support))


def explain_rows(model: FusionHybrid, users: np.ndarray, history: sp.csr_matrix, items: list[np.ndarray],
                 side: torch.Tensor | None = None, profiles: torch.Tensor | None = None,
                 two_stage: bool = False) -> list[list[Explanation]]:
    """The explanation of each row's ``items`` (int64 item indices per row), the rows scored as
    :meth:`FusionHybrid.score_users` scores them (same arguments), or with ``two_stage`` as
    :meth:`FusionHybrid.score_candidates` does (signals standardised on the reference items, the
    scores a two-stage ranker lists; ``side`` and ``profiles`` not taken): one signal pass for all rows."""
    users = np.asarray(users)
    buckets = model.buckets_.cpu().numpy()
    with torch.no_grad():
        if two_stage:
            rows, cols = column_signal_rows(model, users, history, np.unique(np.concatenate(items).astype(np.int64)))
        else:
            rows, cols = model.signal_rows(users, history, side, profiles), None
        names = model.new_users_.gate_names(rows.known, rows.has_side) if len(rows.new_rows) else np.zeros(0, object)
        out = []
        for r, wanted in enumerate(items):
            wanted = np.asarray(wanted, dtype=np.int64)
            at = wanted if cols is None else np.searchsorted(cols, wanted)
            path, features, values, weight, bias = _path(model, rows, names, r, wanted, at)
            path += "" if cols is None else " (two-stage)"
            graph, text = _supports(model, history[r], wanted, buckets)
            known = int((history[r].data > 0).sum())
            row = []
            for n, i in enumerate(wanted):
                b = int(buckets[i])
                contributions = {f: float(weight[k, b] * values[k, n]) for k, f in enumerate(features)}
                row.append(Explanation(
                    user=int(users[r]), item=int(i), score=float(bias[b] + sum(contributions.values())),
                    bucket=NAMES[b], path=path, bias=float(bias[b]), contributions=contributions,
                    values={f: float(values[k, n]) for k, f in enumerate(features)},
                    graph_support=graph[n], text_support=text[n], known_items=known))
            out.append(row)
    return out


def _path(model: FusionHybrid, rows: SignalRows, names: np.ndarray, r: int, wanted: np.ndarray, at: np.ndarray,
          ) -> tuple[str, tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(path, feature names, values float64 [F, k], weight [F, B], bias [B]) of row ``r``'s items
    ``wanted`` (at columns ``at`` of ``rows``' signals), as :meth:`NewUserPath.fuse_rows` decides it."""
    cols = torch.as_tensor(at, device=model.device_)
    values = torch.stack([s[r, cols] for s in rows.signals]).double().cpu().numpy()
    gate = (FEATURES, values, model.gate_weight_, model.gate_bias_)
    label = "item gate"
    new = np.flatnonzero(rows.new_rows == r)
    if len(new):
        n, path = int(new[0]), model.new_users_
        if rows.known[n] == 0 and path.prior.scores is not None:  # the floor's prior replaced the gate
            prior = path.prior.scores.double().cpu().numpy()
            prior = np.pad(prior, (0, max(0, model.text_.shape[0] - len(prior))))[wanted]
            weight, bias = np.ones((1, len(NAMES))), np.zeros(len(NAMES))
            return f"zero-history prior {path.prior.kind}", (path.prior.kind,), prior[None, :], weight, bias
        if names[n] in path.gates:
            side = rows.side[n, cols].double().cpu().numpy()
            ordered = np.vstack([values[:-1], side[None, :], values[-1:]])
            gate = (NEW_USER_FEATURES, ordered, *path.gates[names[n]])
            label = f"new-user gate {names[n]}"
    features, values, weight, bias = gate
    weight = weight.double().cpu().numpy() if isinstance(weight, torch.Tensor) else weight
    bias = bias.double().cpu().numpy() if isinstance(bias, torch.Tensor) else bias
    return label, features, values, weight, bias


def _top(values: np.ndarray, known: np.ndarray, item: int) -> list[Support]:
    """The MAX_SUPPORT known items with the largest positive ``values`` (the item itself left out),
    each with its share of the positive mass."""
    values = np.where(known == item, 0.0, np.maximum(values, 0.0))
    total = values.sum()
    if total <= 0:
        return []
    order = np.argsort(-values, kind="stable")[:MAX_SUPPORT]
    return [Support(int(known[j]), float(values[j]), float(values[j] / total)) for j in order if values[j] > 0]


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


def _supports(model: FusionHybrid, history: sp.csr_matrix, wanted: np.ndarray, buckets: np.ndarray,
              ) -> tuple[list[list[Support]], list[list[Support]]]:
    """Graph and text support of each wanted item from one user's known items (CSR [1, n_items])."""
    known = np.sort(history.indices[history.data > 0]).astype(np.int64)
    if len(known) == 0:
        return [[] for _ in wanted], [[] for _ in wanted]
    text = model.text_
    cosine = (text[torch.as_tensor(known, device=text.device)] @ text[torch.as_tensor(wanted, device=text.device)].T)
    cosine = cosine.double().cpu().numpy()  # [m, k]
    n_warm = model.warm_items_
    inside = known[known < n_warm]
    if not _cheap_relation(model.warm_):  # one score_columns row per known item: capped
        inside = inside[:MAX_HISTORY]
    graph = np.zeros((len(known), len(wanted)))
    warm = (wanted < n_warm) & (buckets[wanted] > 0)
    if len(inside) and warm.any():
        graph[np.searchsorted(known, inside)[:, None], np.flatnonzero(warm)[None, :]] = \
            item_relation(model.warm_, inside, wanted[warm], n_warm).double().cpu().numpy()
    return ([_top(graph[:, n], known, int(i)) for n, i in enumerate(wanted)],
            [_top(cosine[:, n], known, int(i)) for n, i in enumerate(wanted)])
