"""The gates' rehearsal on candidate columns: each rehearsal user scored on a few hundred items.

On full rows every rehearsal user costs a pass over the catalogue per signal, several times per
fit (the gates' examples, their recalls, each new-user variant): at 200k items the gates took
1,170 of a 1,490 s fit (``benchmarks/fit_scaling.py``). Above ``FusionConfig.column_items`` items
the item gate and the new-user gates read each user's *candidate columns* instead, found without
a full row:

    text_knn    the items that list one of the user's items among their text neighbours (exact:
                the signal is 0 everywhere else), the best ``candidates`` of them
    profile     the text index's nearest items to the user's profile vector
    graph       the graph half's nearest item factors (its score's searchable part)
    text_graph  the nearest items by the text-neighbour mean Ŝ F of those factors
    catalogue   popularity's and trending's top items
    positives   the user's rehearsal positives
    draws       ``random_negatives`` uniform draws over the catalogue, each standing for
                (items left) / (draws left), as in :func:`hybrid.fusion.gate.stratified_candidates`;
                one set per ``DRAW_GROUP`` users, shared, so their vectors are gathered once

The signals are computed exactly on these pairs: the profile and side products and the
text-neighbour mass per pair, the catalogue signals by lookup, and ``graph`` and ``text_graph``
from the graph half's factor part per pair (F and Ŝ F) plus the rest of its score
(``residual_columns``: GF-CF's sparse linear filter) on the candidates of a chunk of users and on
their text neighbours at once. Each per-user signal is standardised by the catalogue's mean
and spread as the columns estimate them (:func:`stratified_standardise`: the exact candidates and
the user's known items for themselves, the draws for the rest). A rehearsal recall then ranks the
candidates: an item outside them is taken to rank below. Cost per user: the candidates and their
text neighbours, not the catalogue (the indexes search about √n of it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.fusion.gate import GateExamples, bucket_scores, examples_part
from hybrid.fusion.neighbours import ivf_index
from hybrid.fusion.signals import CatalogueSignal, SignalSet
from hybrid.fusion.user_side import SideRegression
from hybrid.graph.adjacency import csr_tensor
from hybrid.models.base import Recommender
from hybrid.retrieval.ann import AnnIndex

PAIR_CHUNK = 64  # users whose candidate vectors are gathered at once (64 x 1,000 x 384 floats: 98 MB)
DRAW_GROUP = 8  # users sharing one set of random draws (a divisor of PAIR_CHUNK)
SEARCH_EXTRA = 50  # index results asked for beyond ``candidates``, so known items do not crowd them out


@dataclass
class ColumnState:
    """One rehearsal state's candidate finders and factor tables (:meth:`of`, once per state).

    Attributes:
        builder: the state's signals; warm: its graph half; buckets: int64 [n_items] count buckets.
        texts: the text index; knn_t: CSR Sᵀ (row j: the items listing j among their neighbours).
        factors / smoothed: float32 [n_items, k] the graph half's item factors F (new items zeroed,
            as their graph score is) and their text-neighbour mean Ŝ F, with indexes over each;
            None where the graph half has no factors. catalogue_top: int64 popularity's and
            trending's top items. near_items int32 / near_weights float32 [n_items, M]: each
            item's text neighbours and their weights in Ŝ (padded with item 0 at weight 0).
    """

    builder: SignalSet
    warm: Recommender
    buckets: torch.Tensor
    texts: AnnIndex
    knn_t: sp.csr_matrix
    factors: torch.Tensor | None
    smoothed: torch.Tensor | None
    graph_index: AnnIndex | None
    smoothed_index: AnnIndex | None
    catalogue_top: np.ndarray
    near_items: np.ndarray
    near_weights: torch.Tensor

    @classmethod
    def of(cls, builder: SignalSet, warm: Recommender, buckets: torch.Tensor, texts: AnnIndex, n_top: int,
           ) -> ColumnState:
        factors = smoothed = graph_index = smoothed_index = None
        if warm.has_factors:
            item = warm.item_factors().float()
            factors = torch.zeros(len(buckets), item.shape[1], device=item.device)
            factors[: item.shape[0]] = item
            factors[buckets == 0] = 0
            smoothed = csr_tensor(builder.text_graph.mean, factors.device) @ factors
            # Candidates only (their signals are computed exactly): 8-bit codes, a quarter of the memory.
            graph_index, smoothed_index = ivf_index(factors, sq8=True), ivf_index(smoothed, sq8=True)
        top = [torch.topk(s.values, min(n_top, len(s.values))).indices.cpu().numpy()
               for s in builder.members if isinstance(s, CatalogueSignal) and s.values.abs().sum() > 0]
        near_items, near_weights = padded_rows(builder.text_graph.mean)
        return cls(builder, warm, buckets, texts, sp.csr_matrix(builder.text_graph.neighbours.T), factors, smoothed,
                   graph_index, smoothed_index, np.unique(np.concatenate(top)) if top else np.zeros(0, np.int64),
                   near_items, torch.as_tensor(near_weights, device=buckets.device))


def padded_rows(matrix: sp.csr_matrix, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(column indices in the matrix's own index type, int32 below 2³¹ columns: half the bytes of
    int64 at a million rows; float32 values) [rows, longest row] of CSR ``matrix``, padded with
    column ``fill`` at value 0."""
    lengths = np.diff(matrix.indptr)
    width = max(1, int(lengths.max(initial=0)))
    slot = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], lengths)
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    items = np.full((matrix.shape[0], width), fill, matrix.indices.dtype)
    weights = np.zeros((matrix.shape[0], width), np.float32)
    items[rows, slot], weights[rows, slot] = matrix.indices, matrix.data
    return items, weights


@dataclass
class ColumnBatch:
    """One batch of rehearsal users on their candidate columns.

    Attributes:
        cand: int64 [b, m] items (−1: none): the exact candidates, then ``n_random`` draws.
        log_w: float32 [b, m] each column's log-weight as a negative (0 exact, −inf none or a draw
            that hit an exact or known item).
        signals: each float32 [b, m], per-user signals standardised (:func:`stratified_standardise`).
        labels: bool [b, m] rehearsal positives among the exact candidates.
    """

    cand: np.ndarray
    log_w: torch.Tensor
    signals: list[torch.Tensor]
    labels: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """bool [b, m]: the columns a list may hold (exact candidates and draws that missed them)."""
        return self.log_w > -torch.inf

    def top(self, scores: torch.Tensor, k: int = 20, keep: torch.Tensor | None = None) -> np.ndarray:
        """int64 [b, k] the best items by ``scores`` [b, m] among the valid columns (and ``keep``),
        −1 past the end of a shorter list."""
        allowed = self.valid if keep is None else self.valid & keep  # positives are valid: exact candidates
        k = min(k, scores.shape[1])
        values, order = torch.topk(scores.masked_fill(~allowed, -torch.inf), k, dim=1)
        items = np.take_along_axis(self.cand, order.cpu().numpy(), 1)
        return np.where(values.cpu().numpy() > -np.inf, items, -1)


def pair_dot(queries: torch.Tensor, vectors: torch.Tensor, cand: np.ndarray, shared: slice = slice(0, 0),
             ) -> torch.Tensor:
    """float32 [b, m]: each query [b, d] with its own candidates' rows of ``vectors`` [n, d]. The
    columns ``shared`` hold the same items in each group of :data:`DRAW_GROUP` rows (the draws):
    one gather per group for them, not per user."""
    device = vectors.device
    own = torch.as_tensor(np.r_[0:shared.start, shared.stop:cand.shape[1]], device=device)
    index = torch.as_tensor(cand, dtype=torch.int64, device=device)
    out = torch.empty(cand.shape, device=device)
    for s in range(0, len(cand), PAIR_CHUNK):
        rows, part = slice(s, s + PAIR_CHUNK), index[s:s + PAIR_CHUNK]
        out[rows, own] = torch.einsum("bd,bmd->bm", queries[rows], vectors[part[:, own]])
        if shared.stop > shared.start:  # the groups' draws [g, r, d] with their queries [g, DRAW_GROUP, d]
            q = queries[rows]
            groups = -(-len(q) // DRAW_GROUP)
            padded = torch.zeros(groups * DRAW_GROUP, q.shape[1], device=device, dtype=q.dtype)
            padded[:len(q)] = q
            draws = vectors[part[::DRAW_GROUP, shared]]
            out[rows, shared] = (padded.view(groups, DRAW_GROUP, -1) @ draws.transpose(1, 2)).flatten(0, 1)[:len(q)]
    return out


def _rows(matrix: sp.csr_matrix) -> list[np.ndarray]:
    return [matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]] for i in range(matrix.shape[0])]


def _searched(index: AnnIndex | None, queries: torch.Tensor | None, k: int) -> np.ndarray | None:
    if index is None or queries is None:
        return None
    return index.search(queries.detach().float().cpu().numpy(), min(k, index.size))[1]


def graph_pairs(state: ColumnState, users: np.ndarray, history: sp.csr_matrix, cand: np.ndarray,
                queries: torch.Tensor | None, shared: slice = slice(0, 0)) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 [b, m] the graph and text_graph signals (raw) of each user's candidates ``cand``
    (int64 [b, m], ≥ 0), both exact, new items' graph at 0 as at scoring: the factor part per pair
    (``queries`` · F and · Ŝ F), the rest (``residual_columns``: GF-CF's sparse linear filter) on
    the candidates of :data:`PAIR_CHUNK` users at once and on their text neighbours, whose
    weighted mean is then taken per pair (a [chunk, m, M] gather, not every chunk item's mean
    for every chunk user)."""
    device = state.buckets.device
    graph = torch.empty(cand.shape, device=device)
    text_graph = torch.empty(cand.shape, device=device)
    for start in range(0, len(cand), PAIR_CHUNK):
        part = cand[start:start + PAIR_CHUNK]
        near = state.near_items[part]  # [chunk, m, M]
        wanted = np.zeros(len(state.near_items), bool)  # a mask, not a sort: the neighbours are many
        wanted[part] = wanted[near] = True
        cols = np.flatnonzero(wanted)
        position = np.cumsum(wanted) - 1  # an item's place in cols
        rest = state.warm.residual_columns(users[start:start + PAIR_CHUNK], history[start:start + PAIR_CHUNK],
                                           cols).float()
        rest[:, state.buckets[torch.as_tensor(cols, device=device)] == 0] = 0
        chunk = torch.arange(len(part), device=device)[:, None]
        graph[start:start + len(part)] = rest[chunk, torch.as_tensor(position[part], device=device)]
        around = rest[chunk[:, :, None], torch.as_tensor(position[near], device=device)]  # [chunk, m, M]
        text_graph[start:start + len(part)] = (around * state.near_weights[torch.as_tensor(part, device=device)]).sum(-1)
    if queries is not None:
        graph += pair_dot(queries, state.factors, cand, shared)
        text_graph += pair_dot(queries, state.smoothed, cand, shared)
    return graph, text_graph


def stratified_standardise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-row z-score of float [b, m] by the catalogue's mean and spread as the columns estimate
    them, each standing for ``weight`` [b, m] items: the exact candidates and known items (the
    signals' tops, where a heavy tail lives) for themselves, the draws for the rest. Draws alone
    would miss the tail and understate the spread. Rows with no spread become 0."""
    total = weight.sum(1, keepdim=True).clamp_min(1e-12)
    mean = (weight * x).sum(1, keepdim=True) / total
    std = ((weight * (x - mean) ** 2).sum(1, keepdim=True) / total).sqrt()
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


def text_mass(state: ColumnState, history: sp.csr_matrix) -> sp.csr_matrix:
    """CSR [b, n_items] the text_knn signal, raw: the similarity mass of each row's items among
    every item's text neighbours (H Sᵀ; nonzero only near the row's items)."""
    binary = sp.csr_matrix(((history.data > 0).astype(np.float32), history.indices, history.indptr),
                           shape=history.shape)
    knn = (binary @ state.knn_t).tocsr()
    knn.sort_indices()
    return knn


def find_candidates(state: ColumnState, history: sp.csr_matrix, knn: sp.csr_matrix, profiles: torch.Tensor,
                    graph_queries: torch.Tensor | None, positives: sp.csr_matrix, rng: np.random.Generator,
                    n_top: int, n_random: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """(cand int64 [b, m], log_w float32 [b, m], labels bool [b, m]) of a batch (see the module
    docstring and :class:`ColumnBatch`); known items are never candidates, positives always are."""
    b, n_items = history.shape
    k = n_top + SEARCH_EXTRA
    found = [_searched(state.texts, torch.nn.functional.normalize(profiles, dim=1), k),
             _searched(state.graph_index, graph_queries, k), _searched(state.smoothed_index, graph_queries, k)]
    known, positive = _rows(history), _rows(positives)
    exact = []
    for u in range(b):
        lo, hi = knn.indptr[u], knn.indptr[u + 1]
        parts = [knn.indices[lo:hi][np.argsort(-knn.data[lo:hi], kind="stable")],
                 *(f[u][f[u] >= 0] for f in found if f is not None)]
        hard = [p[~np.isin(p, known[u])][:n_top] for p in parts]  # each source best first
        picked = np.concatenate([*hard, state.catalogue_top, positive[u]]).astype(np.int64)
        exact.append(np.setdiff1d(picked, known[u]))
    width = max(1, max(len(e) for e in exact))
    cand = np.full((b, width + n_random), -1, np.int64)
    log_w = np.full(cand.shape, -np.inf, np.float32)
    labels = np.zeros(cand.shape, bool)
    # One set of draws per DRAW_GROUP users, shared by them (pair_dot: one gather a group).
    draws = np.repeat(rng.integers(0, n_items, (-(-b // DRAW_GROUP), n_random)), DRAW_GROUP, axis=0)[:b]
    cand[:, width:] = draws
    for u, items in enumerate(exact):
        cand[u, :len(items)] = items
        log_w[u, :len(items)] = 0.0
        labels[u, :len(items)] = np.isin(items, positive[u])
        ok = ~np.isin(draws[u], items) & ~np.isin(draws[u], known[u])
        rest = n_items - len(items) - len(known[u])
        log_w[u, width:] = np.where(ok, np.log(max(rest, 1) / max(int(ok.sum()), 1)), -np.inf)
    device = state.buckets.device
    return cand, torch.as_tensor(log_w, device=device), torch.as_tensor(labels, device=device)


def column_batch(state: ColumnState, users: np.ndarray, history: sp.csr_matrix, positives: sp.csr_matrix,
                 profiles: torch.Tensor, rng: np.random.Generator, n_top: int, n_random: int,
                 side: tuple[SideRegression | None, torch.Tensor | None] | None = None) -> ColumnBatch:
    """A batch of rehearsal ``users`` (known items ``history``, targets ``positives``) on its
    candidate columns, every signal of ``state.builder`` in order (``side``: the side regression
    and the users' side vectors, whose signal goes before popularity, as the new-user gates read it)."""
    device = state.buckets.device
    queries = state.warm.user_factors(users, history).float() if state.factors is not None else None
    knn = text_mass(state, history)
    cand, log_w, labels = find_candidates(state, history, knn, profiles, queries, positives, rng, n_top, n_random)
    # The known items join the columns for the standardisation only (each for itself, like the
    # exact candidates): a graph filter scores them highest, and the full row's spread holds them.
    known = padded_rows(history, fill=-1)[0]
    weight = torch.cat([torch.exp(log_w), torch.as_tensor(known >= 0, dtype=torch.float32, device=device)], 1)
    width = cand.shape[1]
    safe = np.maximum(np.concatenate([cand, known], 1), 0)
    index = torch.as_tensor(safe, device=device)
    draws = slice(width - n_random, width)
    graph, text_graph = graph_pairs(state, users, history, safe, queries, draws)
    rows = np.repeat(np.arange(len(users)), safe.shape[1])
    mass = torch.as_tensor(np.asarray(knn[rows, safe.ravel()]).reshape(safe.shape), dtype=torch.float32, device=device)
    profile = pair_dot(torch.nn.functional.normalize(profiles, dim=1), state.builder.text, safe, draws)
    per_user = [graph, profile, mass, text_graph]
    if side is not None:  # the new-user gates' side signal (0 without a side regression or side vectors)
        regression, features = side
        per_user.append(torch.zeros(safe.shape, device=device) if regression is None or features is None
                        else regression.score_pairs(features, safe))
    standardised = [stratified_standardise(s, weight)[:, :width] for s in per_user]
    catalogue = [s.values[index[:, :width]] for s in state.builder.members if isinstance(s, CatalogueSignal)]
    signals = [*standardised[:4], catalogue[0], *standardised[4:], catalogue[1]]
    return ColumnBatch(cand, log_w, signals, labels)


def column_batches(state: ColumnState, users: np.ndarray, history: sp.csr_matrix, positives: sp.csr_matrix,
                   profiles: Callable[[np.ndarray, sp.csr_matrix], torch.Tensor], batch_size: int, seed: int,
                   n_top: int, n_random: int,
                   side: Callable[[np.ndarray], tuple[SideRegression | None, torch.Tensor | None]] | None = None,
                   ) -> Iterator[ColumnBatch]:
    """:func:`column_batch` over ``users`` (rows of ``history`` and ``positives`` in the same
    order) in batches; seeded, so a second pass makes the same batches."""
    rng = np.random.default_rng(seed)
    for start in range(0, len(users), batch_size):
        rows = slice(start, start + batch_size)
        batch, known = users[rows], history[rows]
        yield column_batch(state, batch, known, positives[rows], profiles(batch, known), rng, n_top, n_random,
                           None if side is None else side(batch))


def column_examples(batches: Iterable[ColumnBatch], new_items: torch.Tensor, buckets: torch.Tensor,
                    rng: np.random.Generator, max_positives: int) -> GateExamples:
    """The gate's training tensors from column batches (as :func:`~hybrid.fusion.gate.gate_examples`
    from full rows)."""
    parts = [examples_part(torch.stack(b.signals, dim=-1), torch.as_tensor(np.maximum(b.cand, 0), device=buckets.device),
                           b.log_w, b.labels, new_items, buckets, rng, max_positives) for b in batches]
    return GateExamples.stacked(parts)


def pair_fuse(batch: ColumnBatch, weight: torch.Tensor, bias: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
    """float32 [b, m] a gate's scores of the batch's columns (weight [F, B], bias [B])."""
    bk = buckets[torch.as_tensor(np.maximum(batch.cand, 0), device=buckets.device)]
    return bucket_scores(torch.stack(batch.signals, dim=-1), weight, bias, bk)


def column_tops(batches: Iterable[ColumnBatch], lists: dict[str, Callable[[ColumnBatch], torch.Tensor]],
                keep: Callable[[ColumnBatch], torch.Tensor] | None = None, kept: tuple[str, ...] = (),
                ) -> dict[str, np.ndarray]:
    """int64 [users, 20] the top of each named list (scores of a batch's columns; −1 pads a short
    list) over the batches' users in order; the lists in ``kept`` rank only what ``keep`` allows."""
    tops: dict[str, list[np.ndarray]] = {name: [] for name in lists}
    with torch.no_grad():
        for batch in batches:
            for name, scores in lists.items():
                allowed = keep(batch) if keep is not None and name in kept else None
                tops[name].append(batch.top(scores(batch), keep=allowed))
    return {name: np.concatenate(parts) for name, parts in tops.items()}
