"""Fold-in quality: do users re-entered as new users rank as well as the fitted users they were?

Issue target: users re-entered through ``recommend_for_history`` with their own training items
reach at least 95% of the fitted users' Recall@20 on the ML-100K temporal test set.

One split (``configs/ml100k_temporal.yaml`` through :func:`hybrid.evaluate.prepare`), each model
fitted once. The test users who have training interactions are ranked several ways, always with
the same known items (train + valid) masked and scored by the same
:func:`hybrid.evaluate.evaluate_rankings`:

    fitted                their trained final embeddings e_u.
    fold-in (library)     the library's own fold-in code path, unchanged: the model is told these
                          users are untrained (``user_counts_`` = 0), so
                          ``EmbeddingRecommender.user_vectors`` gives them the mean final item
                          vector of their history. For ``hybrid`` the result is checked against
                          ``HybridRecommender.recommend_for_history`` on raw ids (same top-20).
    fold-in (train only)  the same code path, folded in from their training items alone.

Prototype fold-ins (here only, to measure them before porting one into ``hybrid/models``):

    propagate             the LightGCN rule applied to the new user's edges, with the item layers
                          e_i^(l) of the fitted graph:
                              u = 1/(L+1) [ e_u^(0) + Σ_{l=1..L} Σ_{i∈H} e_i^(l-1) / sqrt(|H| d_i) ]
                          with e_u^(0) = 0 (a new user has no layer-0 row). Only the direction of
                          u matters for ranking one user.
    bpr                   a few Adam steps of BPR on the user vector alone, item vectors frozen:
                          max Σ log σ(u·b_i − u·b_j) − λ‖u‖², i ∈ H, j uniform over trained items,
                          started from the library fold-in.
    ials                  the closed-form implicit-ALS fold-in with frozen item vectors B:
                              u = (B_Hᵀ B_H + w₀ Bᵀ B + λ I)⁻¹ B_Hᵀ 1
                          (every unobserved item a weak negative, weight w₀).

Hyper-parameters of the prototypes (bpr steps, ials w₀) are chosen on the validation set (fold in
from training items, rank the held-out validation item), never on test.

Caveat: the fitted users' trained layer-0 rows still flow into the item layers e_i^(l ≥ 1) that
``propagate`` reuses (and into every final item vector), so all re-entry numbers here are a
little optimistic for a truly new user; the leak is one neighbour of weight 1/sqrt(d_u d_i) among
d_i.

Run: python benchmarks/fold_in.py --data-root /work/shared/data
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from typing_extensions import Self

from hybrid.config import load_config
from hybrid.datasets import load_dataset
from hybrid.evaluate import Prepared, evaluate_rankings, prepare
from hybrid.graph import spmm
from hybrid.metrics import hit_matrix, ranking_metrics
from hybrid.models.base import FitData, Recommender, make_model
from hybrid.models.embedding import EmbeddingRecommender
from hybrid.ranking import top_k
from hybrid.recommender import HybridRecommender

K = 20
BPR_STEPS = (0, 25, 50, 100, 200)
IALS_W0 = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


class FixedVectors(Recommender):
    """Scores users with given vectors against a fitted model's final item vectors."""

    def __init__(self, model: EmbeddingRecommender, vectors: torch.Tensor, users: np.ndarray) -> None:
        self.items = model.item_embeddings_
        self.vectors = vectors
        self.row = {int(u): r for r, u in enumerate(users)}

    def fit(self, data: FitData) -> Self:
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        rows = torch.as_tensor([self.row[int(u)] for u in users], device=self.vectors.device)
        return self.vectors[rows] @ self.items.T


def as_untrained(model: EmbeddingRecommender) -> EmbeddingRecommender:
    """A shallow copy of ``model`` that treats every user as untrained: ``score`` runs the library's
    fold-in (``user_vectors``) for all of them. Embeddings and the prior are shared, not copied."""
    folded = copy.copy(model)
    folded.user_counts_ = np.zeros_like(model.user_counts_)
    return folded


def restrict(prepared: Prepared, users: np.ndarray) -> Prepared:
    """``prepared`` evaluated on ``users`` only, reporting the "all" group."""
    return replace(prepared, users=users, groups={"all": (np.ones(len(users), bool), None)})


def ranked(model: Recommender, users: np.ndarray, mask: sp.csr_matrix) -> np.ndarray:
    """int64 [n, K] top-K items of ``users`` with their rows of ``mask`` masked (the library's top_k)."""
    return top_k(model, users, mask, K)[0]


def per_user_recall(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """float [n] Recall@K of each row of ``top`` against CSR ``relevant`` [n, n_items]."""
    hits = hit_matrix(torch.as_tensor(top), relevant).sum(1).numpy()
    return hits / np.maximum(np.diff(relevant.indptr), 1)


def ratio_interval(variant: np.ndarray, base: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% paired-bootstrap interval of mean(variant) / mean(base) over users."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(base), (draws, len(base)))
    ratios = variant[picks].mean(1) / np.maximum(base[picks].mean(1), 1e-12)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


# ---------------------------------------------------------------------- prototype fold-ins
def item_layers(model: EmbeddingRecommender) -> torch.Tensor | None:
    """float32 [L, n_items, d]: the graph's item layers e_i^(0) .. e_i^(L-1), or None for a non-graph model."""
    module = getattr(model, "module_", None)
    if module is None or not hasattr(module, "adj"):
        return None
    with torch.no_grad():
        users0, items0 = module.layer0()
        x = torch.cat([users0, items0])
        layers = [x[module.n_users :]]
        for _ in range(module.layers - 1):
            x = spmm(module.adj, x)
            layers.append(x[module.n_users :])
    return torch.stack(layers).detach()


def propagated_vectors(layers: torch.Tensor, degrees: np.ndarray, rows: sp.csr_matrix) -> torch.Tensor:
    """LightGCN rule on the new users' edges (see the module docstring); float32 [b, d].

    Args:
        layers: float32 [L, n_items, d] item layers 0 .. L-1 of the fitted graph.
        degrees: int [n_items] training degree d_i of each item.
        rows: CSR [b, n_items] each new user's items H.
    """
    rows = sp.csr_matrix(rows, dtype=np.float32)
    counts = np.diff(rows.indptr)
    d_i = np.maximum(degrees[rows.indices], 1)
    rows.data = (1.0 / np.sqrt(np.repeat(np.maximum(counts, 1), counts) * d_i)).astype(np.float32)
    norm = torch.sparse_csr_tensor(
        torch.as_tensor(rows.indptr, dtype=torch.int64), torch.as_tensor(rows.indices, dtype=torch.int64),
        torch.as_tensor(rows.data), size=rows.shape,
    )
    return sum(norm @ layer for layer in layers) / (len(layers) + 1)


def fitted_model(name: str, prepared: Prepared, params: dict[str, Any] | None,
                 cache: Path | None) -> tuple[EmbeddingRecommender, torch.Tensor | None, float]:
    """Fit ``name`` once (or reload it from ``cache``, a development convenience); returns the model,
    its item layers and the fit seconds."""
    model = make_model(name, params)
    if not isinstance(model, EmbeddingRecommender):
        raise TypeError(f"{name} is not an embedding model; fold-in applies to embedding models only")
    folder = None if cache is None else cache / name
    if folder is not None and (folder / "fit.json").exists():
        model = type(model).load(folder)
        layers = load_file(str(folder / "layers.safetensors")).get("layers")
        return model, layers, json.loads((folder / "fit.json").read_text())["fit_seconds"]
    start = time.perf_counter()
    model.fit(prepared.fit_data)
    fit_s = time.perf_counter() - start
    layers = item_layers(model)
    if folder is not None:
        model.save(folder)
        save_file({} if layers is None else {"layers": layers.contiguous()}, str(folder / "layers.safetensors"))
        (folder / "fit.json").write_text(json.dumps({"fit_seconds": fit_s}))
    return model, layers, fit_s


def bpr_vectors(
    model: EmbeddingRecommender, start: torch.Tensor, rows: sp.csr_matrix, trained: np.ndarray,
    steps: int, lr: float = 0.01, reg: float = 1e-3, pairs: int = 64, seed: int = 0,
) -> torch.Tensor:
    """``steps`` Adam steps of BPR on the user vectors only (item vectors frozen); float32 [b, d]."""
    if steps == 0:
        return start.clone()
    items = model.item_embeddings_.detach()
    rows = rows.tocsr()
    counts = np.diff(rows.indptr)
    generator = np.random.default_rng(seed)
    u = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=lr)
    n_items = rows.shape[1]
    known = np.sort(np.repeat(np.arange(len(counts)), counts) * n_items + rows.indices)
    for _ in range(steps):
        pick = (generator.random((len(counts), pairs)) * counts[:, None]).astype(np.int64)
        positives = rows.indices[rows.indptr[:-1, None] + pick]
        negatives = trained[generator.integers(0, len(trained), (len(counts), pairs))]
        hit = np.isin(np.arange(len(counts))[:, None] * n_items + negatives, known)
        pos = torch.as_tensor(positives)
        neg = torch.as_tensor(negatives)
        diff = (u.unsqueeze(1) * (items[pos] - items[neg])).sum(-1)
        weight = torch.as_tensor(~hit, dtype=torch.float32)
        loss = -(torch.nn.functional.logsigmoid(diff) * weight).sum() / weight.sum() + reg * u.pow(2).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return u.detach()


def ials_vectors(model: EmbeddingRecommender, rows: sp.csr_matrix, w0: float, reg: float = 1e-3) -> torch.Tensor:
    """Closed-form implicit-ALS fold-in with frozen item vectors; float32 [b, d]."""
    items = model.item_embeddings_.detach().double()
    gram = items.T @ items
    dim = items.shape[1]
    out = torch.empty(rows.shape[0], dim, dtype=torch.float64)
    rows = rows.tocsr()
    for r in range(rows.shape[0]):
        b = items[torch.as_tensor(rows.indices[rows.indptr[r] : rows.indptr[r + 1]])]
        a = b.T @ b + w0 * gram + reg * torch.eye(dim, dtype=torch.float64)
        out[r] = torch.linalg.solve(a, b.sum(0))
    return out.float()


def vector_metrics(model: EmbeddingRecommender, vectors: torch.Tensor, users: np.ndarray,
                   mask: sp.csr_matrix, relevant: sp.csr_matrix) -> dict[str, float]:
    """Metrics of explicit user vectors, ``mask`` [n_users, n_items] masked, against ``relevant``."""
    return ranking_metrics(ranked(FixedVectors(model, vectors, users), users, mask), relevant[users], [K])


def choose_on_validation(model: EmbeddingRecommender, fit_data: FitData) -> dict[str, Any]:
    """Pick bpr steps and ials w₀ by validation Recall@20: fold in from train items, rank valid items."""
    train = fit_data.train.matrix()
    valid = fit_data.valid.matrix()
    users = np.flatnonzero((np.diff(valid.indptr) > 0) & (np.diff(train.indptr) > 0))
    rows = train[users]
    trained = np.flatnonzero(fit_data.train.item_counts() > 0)
    start = as_untrained(model).user_vectors(users, rows)
    bpr = {s: vector_metrics(model, bpr_vectors(model, start, rows, trained, s), users, train, valid)
           for s in BPR_STEPS}
    ials = {w: vector_metrics(model, ials_vectors(model, rows, w), users, train, valid) for w in IALS_W0}
    best_steps = max(bpr, key=lambda s: bpr[s][f"recall@{K}"])
    best_w0 = max(ials, key=lambda w: ials[w][f"recall@{K}"])
    return {"bpr_steps": best_steps, "ials_w0": best_w0,
            "bpr_valid": {s: round(m[f"recall@{K}"], 4) for s, m in bpr.items()},
            "ials_valid": {w: round(m[f"recall@{K}"], 4) for w, m in ials.items()}}


def check_facade(model: EmbeddingRecommender, prepared: Prepared, users: np.ndarray, top: np.ndarray) -> int:
    """Users whose ``HybridRecommender.recommend_for_history`` top-K differs from the fold-in top-K."""
    train = prepared.fit_data.train
    rec = HybridRecommender()
    rec.model_, rec.user_ids_, rec.item_ids_ = model, train.user_ids, train.item_ids
    mismatches = 0
    for r, user in enumerate(users):
        known = prepared.history[user].indices
        ids, _ = rec.recommend_for_history(train.item_ids[known].tolist(), k=K)
        if list(ids) != list(train.item_ids[top[r]]):
            mismatches += 1
    return mismatches


Row = tuple[str, dict[str, float], tuple[float, float] | None, float]


def run_model(name: str, prepared: Prepared, params: dict[str, Any] | None, cache: Path | None) -> list[Row]:
    """Every way of scoring the test users with training history; one row per way."""
    model, layers, fit_s = fitted_model(name, prepared, params, cache)
    print(f"\n{name}: fit {fit_s:.1f} s")
    users = prepared.users[model.user_counts_[prepared.users] > 0]
    history = prepared.history  # train + valid: what every variant masks
    scope = restrict(prepared, users)
    relevant = prepared.test[users]
    rows: list[Row] = []
    base_recall: np.ndarray | None = None

    def add(label: str, rank: Any) -> np.ndarray:
        nonlocal base_recall
        tick = time.perf_counter()
        top = rank()
        seconds = time.perf_counter() - tick
        recall = per_user_recall(top, relevant)
        interval = None if base_recall is None else ratio_interval(recall, base_recall)
        base_recall = recall if base_recall is None else base_recall
        rows.append((label, evaluate_rankings(top, scope, [K])["all"], interval, seconds))
        return top

    add("fitted (trained e_u)", lambda: ranked(model, users, history))
    folded = as_untrained(model)
    folded_top = add("fold-in, library (known = train+valid items)", lambda: ranked(folded, users, history))
    train_only = prepared.fit_data.train.matrix()

    class TrainItemsOnly(Recommender):
        """The library fold-in from training items alone; the caller still masks train + valid."""

        def fit(self, data: FitData) -> Self:
            return self

        def score(self, batch: np.ndarray, rows_: sp.csr_matrix) -> torch.Tensor:
            return folded.score(batch, train_only[batch])

    add("fold-in, library (train items only)", lambda: ranked(TrainItemsOnly(), users, history))
    if name == "hybrid":
        sample = users[:: max(1, len(users) // 50)]
        mismatches = check_facade(model, prepared, sample, folded_top[np.searchsorted(users, sample)])
        print(f"HybridRecommender.recommend_for_history vs library fold-in: {mismatches} of {len(sample)} "
              f"sampled users differ in top-{K}")

    known = history[users]
    trained_items = np.flatnonzero(prepared.fit_data.train.item_counts() > 0)
    chosen = choose_on_validation(model, prepared.fit_data)
    print(f"validation Recall@{K} by bpr steps {chosen['bpr_valid']} -> {chosen['bpr_steps']}")
    print(f"validation Recall@{K} by ials w0 {chosen['ials_valid']} -> {chosen['ials_w0']}")

    def by_vectors(vectors: Any) -> Any:
        return lambda: ranked(FixedVectors(model, vectors(), users), users, history)

    if layers is not None:
        degrees = prepared.fit_data.train.item_counts()
        add("prototype: propagate (LightGCN rule)", by_vectors(lambda: propagated_vectors(layers, degrees, known)))
    start = folded.user_vectors(users, known)
    add(f"prototype: bpr ({chosen['bpr_steps']} steps)", by_vectors(
        lambda: bpr_vectors(model, start, known, trained_items, chosen["bpr_steps"])))
    add(f"prototype: ials (w0 {chosen['ials_w0']})", by_vectors(lambda: ials_vectors(model, known, chosen["ials_w0"])))
    return rows


def print_table(name: str, rows: list[Row], n_users: int) -> None:
    base = rows[0][1]
    print(f"\n### {name}: {n_users} test users with training history, known items masked\n")
    print(f"| users scored as | Recall@{K} | NDCG@{K} | recall vs fitted (95% CI) | ndcg vs fitted | seconds |")
    print("|---|---|---|---|---|---|")
    for label, m, interval, seconds in rows:
        r, n = m[f"recall@{K}"], m[f"ndcg@{K}"]
        ci = "" if interval is None else f" ({interval[0]:.0%}–{interval[1]:.0%})"
        print(f"| {label} | {r:.4f} | {n:.4f} | {r / base[f'recall@{K}']:.1%}{ci} | "
              f"{n / base[f'ndcg@{K}']:.1%} | {seconds:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--config", default="configs/ml100k_temporal.yaml")
    parser.add_argument("--models", default="hybrid,lightgcn")
    parser.add_argument("--cache-dir", default=None,
                        help="keep fitted models here and reuse them on the next run (development only)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    cache = None if args.cache_dir is None else Path(args.cache_dir) / Path(args.config).stem
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    config = load_config(args.config)
    bundle = load_dataset(config.data.name, args.data_root, config.data.path)
    prepared = prepare(bundle, config, torch.device("cpu"))
    counts = prepared.fit_data.train.user_counts()
    n_warm = int((counts[prepared.users] > 0).sum())
    print(f"{bundle.name} {prepared.split.name}: {len(prepared.users)} test users, {n_warm} with training history")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows = run_model(name, prepared, config.params.get(name), cache)
        print_table(name, rows, n_warm)


if __name__ == "__main__":
    main()
