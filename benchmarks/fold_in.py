"""Fold-in quality: do users re-entered as new users rank as well as the fitted users they were?

Issue target: users re-entered through ``recommend_for_history`` with their own training items
reach at least 95% of the fitted users' Recall@20 on the ML-100K temporal test set.

One split (``configs/ml100k_temporal.yaml`` through :func:`hybrid.evaluation.evaluate.prepare`), each model
fitted once. The test users who have training interactions are ranked several ways, always with
the same known items (train + valid) masked and scored by the same
:func:`hybrid.evaluation.evaluate.evaluate_rankings`. The same ways are also scored on the validation set
(every user with a held-out validation item: fold in from training items, mask them, rank the
validation item), a second and larger sample (750 users against 109 test users on ML-100K):

    fitted                their trained final embeddings e_u.
    fold-in (library)     the library's own fold-in code path, unchanged: the model is told these
                          users are untrained (``user_counts_`` = 0), so
                          ``EmbeddingRecommender.fold_in`` gives them the mean final item vector
                          of their history refined by a few BPR steps (:mod:`hybrid.models.fold_in`;
                          ``fold_in_steps: 0`` in the model's params measures the mean alone).
                          For ``hybrid`` the result is checked against
                          ``HybridRecommender.recommend_for_history`` on raw ids (same top-20).
    fold-in (train only)  the same code path, folded in from their training items alone.

Prototype fold-ins (here only, to measure alternatives; the bpr one was ported into
``hybrid/fold_in.py`` with the (steps, lr) this grid chose on validation, 25 and 0.05):

    propagate             the LightGCN rule applied to the new user's edges, with the item layers
                          e_i^(l) of the fitted graph:
                              u = 1/(L+1) [ e_u^(0) + Σ_{l=1..L} Σ_{i∈H} e_i^(l-1) / sqrt(|H| d_i) ]
                          with e_u^(0) = 0 (a new user has no layer-0 row). Only the direction of
                          u matters for ranking one user.
    bpr                   a few Adam steps of BPR on the user vector alone, item vectors frozen:
                          max Σ log σ(u·b_i − u·b_j) − λ‖u‖², i ∈ H, j uniform over trained items,
                          started from the library fold-in (so, now, more steps on top of its own).
    ials                  the closed-form implicit-ALS fold-in with frozen item vectors B:
                              u = (B_Hᵀ B_H + w₀ Bᵀ B + λ I)⁻¹ B_Hᵀ 1
                          (every unobserved item a weak negative, weight w₀).

Hyper-parameters of the prototypes (bpr steps, ials w₀) are chosen on the validation set, never
on test, so their validation column is optimistic (marked *).

"recall vs fitted" carries a 95% paired-bootstrap interval over users; "top-20 pop." is the mean
training count of the recommended items (a fold-in that leans on popular items shows here).

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
from hybrid.data.datasets import load_dataset
from hybrid.evaluation.prepare import Prepared, prepare
from hybrid.evaluation.scoring import evaluate_rankings
from hybrid.graph.adjacency import spmm
from hybrid.metrics import hit_matrix, ranking_metrics
from hybrid.models.base import FitData, Recommender, import_builtins, make_model
from hybrid.models.embedding import EmbeddingRecommender
from hybrid.recommender import HybridRecommender
from hybrid.retrieval.ranking import top_k

import_builtins()  # every built-in model's module now: the run uses one version of their code

K = 20
# (Adam steps, learning rate) of the bpr fold-in; (0, ·) is the library fold-in it starts from.
BPR_GRID = ((0, 0.01), (25, 0.01), (50, 0.01), (100, 0.01), (200, 0.01), (400, 0.01), (25, 0.05), (50, 0.05), (100, 0.05))
IALS_W0 = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)

# A user-vector rule: (fitted model, user indices [b], known items CSR [b, n_items]) -> float32 [b, d].
VectorRule = Any


class ByRule(Recommender):
    """Scores users with ``rule(users, known[users])`` against the model's final item vectors.

    ``known`` is what the users are folded in from; the caller masks what it masks (``top_k``'s
    history), so folding in from fewer items than are masked is possible.
    """

    def __init__(self, model: EmbeddingRecommender, rule: VectorRule, known: sp.csr_matrix) -> None:
        self.model, self.rule, self.known = model, rule, known

    def fit(self, data: FitData) -> Self:
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.rule(users, self.known[users]) @ self.model.item_embeddings_.T


def as_untrained(model: EmbeddingRecommender) -> EmbeddingRecommender:
    """A shallow copy of ``model`` that treats every user as untrained: its ``user_vectors`` is the
    library's fold-in for all of them. Embeddings and the prior are shared, not copied."""
    folded = copy.copy(model)
    folded.user_counts_ = np.zeros_like(model.user_counts_)
    return folded


def restrict(prepared: Prepared, users: np.ndarray) -> Prepared:
    """``prepared`` evaluated on ``users`` only, reporting the "all" group."""
    return replace(prepared, users=users, groups={"all": (np.ones(len(users), bool), None)})


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
    n_items = rows.shape[1]
    known = np.sort(np.repeat(np.arange(len(counts)), counts) * n_items + rows.indices)
    # top_k scores under inference mode; these few steps need autograd.
    with torch.inference_mode(False), torch.enable_grad():
        u = start.clone().requires_grad_(True)
        items = items.clone()
        optimizer = torch.optim.Adam([u], lr=lr)
        for _ in range(steps):
            pick = (generator.random((len(counts), pairs)) * counts[:, None]).astype(np.int64)
            positives = rows.indices[rows.indptr[:-1, None] + pick]
            negatives = trained[generator.integers(0, len(trained), (len(counts), pairs))]
            hit = np.isin(np.arange(len(counts))[:, None] * n_items + negatives, known)
            diff = (u.unsqueeze(1) * (items[torch.as_tensor(positives)] - items[torch.as_tensor(negatives)])).sum(-1)
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


# ---------------------------------------------------------------------- fitting and checks
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


def validation_recall(model: EmbeddingRecommender, rule: VectorRule, fit_data: FitData) -> float:
    """Recall@K on the validation set: fold in from training items, mask them, rank the valid items."""
    train, valid = fit_data.train.matrix(), fit_data.valid.matrix()
    users = np.flatnonzero((np.diff(valid.indptr) > 0) & (np.diff(train.indptr) > 0))
    top = top_k(ByRule(model, rule, train), users, train, K)[0]
    return ranking_metrics(top, valid[users], [K])[f"recall@{K}"]


def choose(model: EmbeddingRecommender, rules: dict[Any, VectorRule], fit_data: FitData) -> tuple[Any, dict[Any, float]]:
    """The key of ``rules`` with the best validation Recall@K, and every key's score."""
    scores = {key: round(validation_recall(model, rule, fit_data), 4) for key, rule in rules.items()}
    return max(scores, key=lambda key: scores[key]), scores


# ---------------------------------------------------------------------- the benchmark
Row = dict[str, Any]


def run_model(name: str, prepared: Prepared, params: dict[str, Any] | None, cache: Path | None) -> list[Row]:
    """Every way of scoring the users with training history; one row per way."""
    model, layers, fit_s = fitted_model(name, prepared, params, cache)
    print(f"\n{name}: fit {fit_s:.1f} s")
    fit_data = prepared.fit_data
    users = prepared.users[model.user_counts_[prepared.users] > 0]
    history = prepared.history  # train + valid: what every test ranking masks
    train = fit_data.train.matrix()
    counts = fit_data.train.item_counts()
    trained_items = np.flatnonzero(counts > 0)
    scope = restrict(prepared, users)
    relevant = prepared.test[users]
    folded = as_untrained(model)

    def fitted_rule(batch: np.ndarray, known: sp.csr_matrix) -> torch.Tensor:
        return model.user_vectors(batch, known)

    def library_rule(batch: np.ndarray, known: sp.csr_matrix) -> torch.Tensor:
        return folded.user_vectors(batch, known)

    def bpr_rule(steps: int, lr: float) -> VectorRule:
        return lambda batch, known: bpr_vectors(model, folded.user_vectors(batch, known), known, trained_items, steps, lr)

    def ials_rule(w0: float) -> VectorRule:
        return lambda batch, known: ials_vectors(model, known, w0)

    (steps, lr), bpr_scores = choose(model, {key: bpr_rule(*key) for key in BPR_GRID}, fit_data)
    w0, ials_scores = choose(model, {w: ials_rule(w) for w in IALS_W0}, fit_data)
    print(f"validation Recall@{K} by bpr (steps, lr) {bpr_scores} -> {(steps, lr)}")
    print(f"validation Recall@{K} by ials w0 {ials_scores} -> {w0}")

    variants: list[tuple[str, VectorRule, sp.csr_matrix, bool]] = [
        ("fitted (trained e_u)", fitted_rule, history, False),
        ("fold-in, library (from train+valid items)", library_rule, history, False),
        ("fold-in, library (from train items only)", library_rule, train, False),
    ]
    if layers is not None:
        variants.append(("prototype: propagate (LightGCN rule, e_u^(0)=0)",
                         lambda batch, known: propagated_vectors(layers, counts, known), history, False))
    variants += [
        (f"prototype: bpr on u, items frozen ({steps} steps, lr {lr})", bpr_rule(steps, lr), history, True),
        (f"prototype: ials fold-in (w0 {w0})", ials_rule(w0), history, True),
    ]
    rows: list[Row] = []
    base_recall: np.ndarray | None = None
    for label, rule, known, tuned in variants:
        tick = time.perf_counter()
        top = top_k(ByRule(model, rule, known), users, history, K)[0]
        seconds = time.perf_counter() - tick
        recall = per_user_recall(top, relevant)
        interval = None if base_recall is None else ratio_interval(recall, base_recall)
        if base_recall is None:
            base_recall = recall
        rows.append({
            "label": label, "test": evaluate_rankings(top, scope, [K])["all"], "interval": interval,
            "valid": validation_recall(model, rule, fit_data), "tuned": tuned, "seconds": seconds,
            "popularity": float(counts[top].mean()),
        })
        if label.startswith("fold-in, library (from train+valid") and name == "hybrid":
            sample = users[:: max(1, len(users) // 50)]
            mismatches = check_facade(model, prepared, sample, top[np.searchsorted(users, sample)])
            print(f"HybridRecommender.recommend_for_history vs library fold-in: {mismatches} of "
                  f"{len(sample)} sampled users differ in top-{K}")
    # Reference: the same users ranked by training popularity alone (no user vector at all).
    popularity = make_model("popularity").fit(fit_data)
    top = top_k(popularity, users, history, K)[0]
    valid = fit_data.valid.matrix()
    valid_users = np.flatnonzero((np.diff(valid.indptr) > 0) & (np.diff(train.indptr) > 0))
    valid_top = top_k(popularity, valid_users, train, K)[0]
    rows.append({
        "label": "reference: popularity (no user vector)", "test": evaluate_rankings(top, scope, [K])["all"],
        "interval": ratio_interval(per_user_recall(top, relevant), base_recall),
        "valid": ranking_metrics(valid_top, valid[valid_users], [K])[f"recall@{K}"],
        "tuned": False, "seconds": 0.0, "popularity": float(counts[top].mean()),
    })
    return rows


def print_table(name: str, rows: list[Row], n_test: int, n_valid: int) -> None:
    base, base_valid = rows[0]["test"], rows[0]["valid"]
    print(f"\n### {name}: test = {n_test} test users with training history (train+valid masked); "
          f"valid = {n_valid} users' held-out validation item (train masked)\n")
    print(f"| users scored as | test R@{K} | test N@{K} | test recall vs fitted (95% CI) | test ndcg vs fitted "
          f"| valid R@{K} | valid recall vs fitted | top-{K} pop. | rank s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        r, n = row["test"][f"recall@{K}"], row["test"][f"ndcg@{K}"]
        ci = "" if row["interval"] is None else f" ({row['interval'][0]:.0%}–{row['interval'][1]:.0%})"
        star = "*" if row["tuned"] else ""
        print(f"| {row['label']} | {r:.4f} | {n:.4f} | {r / base[f'recall@{K}']:.1%}{ci} | "
              f"{n / base[f'ndcg@{K}']:.1%} | {row['valid']:.4f}{star} | {row['valid'] / base_valid:.1%}{star} | "
              f"{row['popularity']:.0f} | {row['seconds']:.2f} |")


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
    config = load_config(args.config)
    bundle = load_dataset(config.data.name, args.data_root, config.data.path)
    prepared = prepare(bundle, config, torch.device("cpu"))
    train, valid = prepared.fit_data.train.matrix(), prepared.fit_data.valid.matrix()
    n_test = int((np.diff(train.indptr)[prepared.users] > 0).sum())
    n_valid = int(((np.diff(valid.indptr) > 0) & (np.diff(train.indptr) > 0)).sum())
    print(f"{bundle.name} {prepared.split.name}: {len(prepared.users)} test users, {n_test} with training history")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows = run_model(name, prepared, config.params.get(name), cache)
        print_table(name, rows, n_test, n_valid)


if __name__ == "__main__":
    main()
