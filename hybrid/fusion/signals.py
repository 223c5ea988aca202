"""The signals the hybrid fuses: each a small object fitted once per state and scored per batch of users.

    graph      g(u, i)   the warm scorer's score (a graph filter or LightGCN); 0 for new items
    profile    c(u, i)   cos(mean text vector of u's items, x_i): what content kNN ranks by
    text_knn   k(u, i)   Σ_{j ∈ h(u)} S_ij: u's items among i's top-M text neighbours
    text_graph t(u, i)   Σ_j Ŝ_ij g(u, j): the graph scores of i's text neighbours (Ŝ row-normalised),
                         which carries what the graph knows to new and sparse items
    trending   r(i)      log(1 + interactions in the recent window), standardised and clipped likewise
                         (hybrid.fusion.trend; 0 without timestamps)
    popularity p(i)      log(1 + n_i), standardised over the catalogue and clipped to ±3

A :class:`Signal` is fitted on :class:`SignalInputs` (text vectors, the text-neighbour graph, item
counts) and scores a :class:`UserBatch` on every item or on given columns; :class:`SignalSet`
holds the fitted signals in :data:`FEATURES` order and standardises them: each user-item signal
per user over the catalogue (mean 0, variance 1), so the fusion weights see one scale whatever
the scorer's, the graph's size or the user's history length. S [n_items, n_items] keeps each
item's top-M text neighbours (cosine > 0, itself excluded): :mod:`hybrid.fusion.neighbours`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.graph.adjacency import csr_tensor


@dataclass(frozen=True)
class SignalInputs:
    """What the signals are fitted on.

    Attributes:
        text: float32 [n_items, d] L2-normalised text vectors.
        neighbours: CSR [n_items, n_items] text neighbours (:func:`hybrid.fusion.neighbours.text_neighbours`).
        counts: int64 [n_items] interactions per item in the graph the warm scorer was fitted on.
        device: where the batch tensors live.
        recent: float [n_items] interactions per item in the recent window of that graph, or None
            (no timestamps).
    """

    text: torch.Tensor
    neighbours: sp.csr_matrix
    counts: np.ndarray
    device: torch.device
    recent: np.ndarray | None = None


@dataclass
class UserBatch:
    """What one batch of users brings to the signals.

    Attributes:
        history: CSR [b, n_items] each user's known items.
        graph: float32 [b, c] the warm scorer's scores on ``graph_cols`` (0 on new items).
        profiles: float32 [b, d] each user's profile vector (mean text vector of their items, or
            their encoded profile text).
        graph_cols: int64 sorted items ``graph`` covers (None: every item, in order); a column
            query needs the graph on its items' text neighbours too.
    """

    history: sp.csr_matrix
    graph: torch.Tensor
    profiles: torch.Tensor
    graph_cols: np.ndarray | None = None

    def graph_at(self, cols: np.ndarray | None) -> torch.Tensor:
        """The graph scores of ``cols`` (None: of every item)."""
        if cols is None or self.graph_cols is None:
            return self.graph
        return self.graph[:, torch.as_tensor(np.searchsorted(self.graph_cols, cols), device=self.graph.device)]


class Signal(ABC):
    """One signal: ``fit`` once per fitted state, then ``score`` float32 [b, len(cols)] raw (before
    the per-user standardisation that :class:`SignalSet` applies where ``per_user``)."""

    name: ClassVar[str]
    per_user: ClassVar[bool] = True

    @abstractmethod
    def fit(self, inputs: SignalInputs) -> Self: ...

    @abstractmethod
    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor: ...


class GraphSignal(Signal):
    """The warm scorer's score, as the batch carries it."""

    name = "graph"

    def fit(self, inputs: SignalInputs) -> Self:
        return self

    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor:
        return batch.graph_at(cols)


class ProfileSignal(Signal):
    """Cosine of the user's profile vector and the item's text vector."""

    name = "profile"

    def fit(self, inputs: SignalInputs) -> Self:
        self.text = inputs.text
        return self

    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor:
        text = self.text if cols is None else self.text[torch.as_tensor(cols, device=self.text.device)]
        return torch.nn.functional.normalize(batch.profiles, dim=1) @ text.T


class TextKnnSignal(Signal):
    """The similarity mass of the user's items among the item's text neighbours."""

    name = "text_knn"

    def fit(self, inputs: SignalInputs) -> Self:
        self.neighbours, self.device = inputs.neighbours, inputs.device
        self.tensor = csr_tensor(inputs.neighbours, inputs.device)
        return self

    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor:
        binary = (batch.history > 0).astype(np.float32)
        if cols is None:
            rows = torch.as_tensor(binary.toarray(), device=self.device)
            return (self.tensor @ rows.T).T
        near = sp.csr_matrix(self.neighbours[cols])
        return torch.as_tensor((near @ binary.T).T.toarray(), device=self.device, dtype=torch.float32)


class TextGraphSignal(Signal):
    """The mean graph score of the item's text neighbours (weighted by their similarity)."""

    name = "text_graph"

    def fit(self, inputs: SignalInputs) -> Self:
        sums = np.asarray(inputs.neighbours.sum(1)).ravel()
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
        self.neighbours = inputs.neighbours
        self.mean = sp.csr_matrix(sp.diags(scale) @ inputs.neighbours, dtype=np.float32)
        self.tensor, self.device = csr_tensor(self.mean, inputs.device), inputs.device
        return self

    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor:
        if cols is None:
            return (self.tensor @ batch.graph.T).T
        rows = self.mean[cols][:, batch.graph_cols]
        return torch.as_tensor((rows @ batch.graph.cpu().numpy().T).T, device=self.device, dtype=torch.float32)

    def neighbour_cols(self, cols: np.ndarray) -> np.ndarray:
        """int64 sorted ``cols`` and their text neighbours: where a column query needs the graph."""
        return np.union1d(cols, self.neighbours[cols].indices)


def catalogue_z(counts: np.ndarray, device: torch.device) -> torch.Tensor:
    """log(1 + counts) standardised over the catalogue and clipped to ±3 (an item far outside the
    usual counts must not get an extrapolated weight)."""
    values = torch.as_tensor(np.log1p(counts), dtype=torch.float32, device=device)
    return ((values - values.mean()) / values.std().clamp_min(1e-6)).clamp(-3, 3)


class CatalogueSignal(Signal):
    """A signal of the item alone (``values`` [n_items]): one ranking for every user."""

    per_user = False
    values: torch.Tensor

    def score(self, batch: UserBatch, cols: np.ndarray | None = None) -> torch.Tensor:
        values = self.values if cols is None else self.values[torch.as_tensor(cols, device=self.values.device)]
        return values.expand(batch.history.shape[0], -1)


class TrendingSignal(CatalogueSignal):
    """Recent interactions, scored as popularity is; 0 without timestamps."""

    name = "trending"

    def fit(self, inputs: SignalInputs) -> Self:
        self.values = torch.zeros(len(inputs.counts), device=inputs.device) if inputs.recent is None \
            else catalogue_z(inputs.recent, inputs.device)
        return self


class PopularitySignal(CatalogueSignal):
    """log(1 + n_i) standardised over the catalogue and clipped to ±3."""

    name = "popularity"

    def fit(self, inputs: SignalInputs) -> Self:
        self.values = catalogue_z(inputs.counts, inputs.device)
        return self


# Rehearsal signals (users × items × signals floats) are kept in memory between the passes that
# read them up to this many floats (1 GiB), and recomputed per pass beyond: a rehearsal sample of
# thousands of users over a catalogue of 10⁵ items would otherwise hold tens of GiB.
SIGNAL_CACHE_FLOATS = 2**28
Batch = TypeVar("Batch")


class SignalBatches(Generic[Batch]):
    """Batches of rehearsal signals that several passes read (a gate's fit, then its recall): kept
    in memory after the first pass where their size, ``floats``, is at most SIGNAL_CACHE_FLOATS,
    and otherwise made afresh by ``make`` for each pass (the same numbers).

    Args:
        make: returns a fresh iterator over the batches.
        floats: how many floats the batches hold (users × items × signals).
    """

    def __init__(self, make: Callable[[], Iterator[Batch]], floats: int) -> None:
        self.make = make
        self.keep = floats <= SIGNAL_CACHE_FLOATS
        self.kept: list[Batch] | None = None

    def __iter__(self) -> Iterator[Batch]:
        if self.kept is not None:
            yield from self.kept
            return
        if not self.keep:
            yield from self.make()
            return
        kept = []
        for batch in self.make():
            kept.append(batch)
            yield batch
        self.kept = kept  # only after a whole pass: a pass left early is made afresh next time

SIGNALS: tuple[type[Signal], ...] = (GraphSignal, ProfileSignal, TextKnnSignal, TextGraphSignal, TrendingSignal,
                                     PopularitySignal)
FEATURES = tuple(s.name for s in SIGNALS)  # the gate's rows, in this order (popularity last)


def standardise(x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row z-score of float [b, n] by the mean and spread of its ``reference`` columns (None:
    all of them); rows with no spread become 0."""
    ref = x if reference is None else x[:, reference]
    mean, std = ref.mean(1, keepdim=True), ref.std(1, keepdim=True)
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


class SignalSet:
    """The fitted signals of one state, in :data:`FEATURES` order."""

    def __init__(self, text: torch.Tensor, neighbours: sp.csr_matrix, counts: np.ndarray, device: torch.device,
                 recent: np.ndarray | None = None) -> None:
        inputs = SignalInputs(text, neighbours, np.asarray(counts), device, recent)
        self.text, self.device = text, device
        self.members = [kind().fit(inputs) for kind in SIGNALS]

    @property
    def text_graph(self) -> TextGraphSignal:
        return next(s for s in self.members if isinstance(s, TextGraphSignal))

    def profile_vectors(self, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [b, d] mean text vector of each row's items (zero for an empty row)."""
        counts = np.maximum(np.diff(history.indptr), 1).astype(np.float32)
        values = (history.data > 0).astype(np.float32) / np.repeat(counts, np.diff(history.indptr))
        mean = sp.csr_matrix((values, history.indices, history.indptr), shape=history.shape)
        return csr_tensor(mean, self.device) @ self.text

    def signals(self, graph: torch.Tensor, history: sp.csr_matrix, profiles: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every signal on every item, standardised, each float32 [b, n_items].

        Args:
            graph: float32 [b, n_items] the warm scorer's scores.
            history: CSR [b, n_items] each user's known items.
            profiles: float32 [b, d] profile vectors overriding :meth:`profile_vectors` (e.g. from
                a new user's text), or None.
        """
        batch = UserBatch(history, graph, self.profile_vectors(history) if profiles is None else profiles)
        return [standardise(s.score(batch)) if s.per_user else s.score(batch) for s in self.members]

    def columns(self, batch: UserBatch, cols: np.ndarray, reference: torch.Tensor) -> list[torch.Tensor]:
        """Every signal on items ``cols`` (sorted), each standardised by its ``reference`` columns
        (positions in ``cols``): :mod:`hybrid.fusion.candidates`."""
        return [standardise(s.score(batch, cols), reference) if s.per_user else s.score(batch, cols)
                for s in self.members]
