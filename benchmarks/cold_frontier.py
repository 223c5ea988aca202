"""What the hybrid's content scale trades: warm against cold Recall/NDCG@20, against its peers.

On each cold-item config, in one run: ``lightgcn`` and ``content`` (the peers the targets name) and
``hybrid`` fitted once with its defaults; then the hybrid's cold items are re-scored at fixed
content scales s (``b = α g + (1 − α) s c``, the calibrated τ kept) and the test set is ranked
again. The row "calibrated" is the s the model chose on validation. Test metrics are printed
for every s so the trade-off is visible, next to the warm recall the calibration expects each s
to cost (:func:`~hybrid.models.calibration.cold_slot_loss` on the validation set, the price the model
chose by); nothing here feeds back into the model's choice. A last line ranks the new items in
a list of their own (warm items never shown), for ``content`` and ``hybrid``: how well each
orders new items when they do not have to compete with warm ones.

    python benchmarks/cold_frontier.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

import hybrid.models  # noqa: F401  (registers the models)
from hybrid.config import load_config
from hybrid.data.datasets import load_dataset
from hybrid.evaluation.evaluate import Prepared, evaluate_rankings, prepare
from hybrid.evaluation.metrics import hit_matrix
from hybrid.models.base import FitData, Recommender, make_model
from hybrid.models.calibration import cold_slot_loss
from hybrid.models.hybrid_model import HybridRecommenderModel
from hybrid.retrieval.ranking import mask_history, top_k

CONFIGS = ("configs/ml100k_cold_items.yaml", "configs/ml_latest_small_cold_items.yaml")
SCALES = (0.7, 0.75, 0.8, 0.825, 0.85, 0.9, 1.0)


def metrics(model: Recommender, prepared: Prepared) -> dict[str, float]:
    """warm and cold Recall/NDCG@20 of one full ranking."""
    result = evaluate_rankings(top_k(model, prepared.users, prepared.history, 20)[0], prepared, [20])
    return {f"{group} {m}": result[group][f"{m}@20"] for group in ("warm", "cold") for m in ("recall", "ndcg")}


class NewItemsOnly(Recommender):
    """A fitted model with every warm item scored -inf: new items in a list of their own (a
    "new arrivals" slot), ranked by that model."""

    def __init__(self, model: Recommender, cold: np.ndarray) -> None:
        self.model, self.warm = model, torch.as_tensor(~cold)

    def fit(self, data: FitData) -> Self:
        self.model.fit(data)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        scores = self.model.score(users, history)
        return scores.masked_fill(self.warm.to(scores.device), -torch.inf)


def last_slot_share(model: HybridRecommenderModel, prepared: Prepared) -> tuple[float, int]:
    """(share of the warm ranking's validation hits at rank 20, number of those hits): the warm
    recall one cold slot per user would cost (a flat hit-rate curve makes every slot expensive),
    and how many hits price it."""
    train, valid = prepared.fit_data.train.matrix(), prepared.fit_data.valid.matrix()
    rows = np.flatnonzero(np.diff(valid.indptr) > 0)
    scores = mask_history(model.user_embeddings_[torch.as_tensor(rows)] @ model.graph_items_.T, train[rows])
    scores[:, model.item_counts_ == 0] = -torch.inf
    hits = hit_matrix(torch.topk(scores, 20, dim=1).indices, valid[rows]).sum(0)
    return float(hits[-1] / hits.sum()), int(hits.sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for path in args.configs:
        config = load_config(path)
        prepared = prepare(load_dataset(config.data.name, args.data_root, config.data.path), config, torch.device("cpu"))
        rows: list[tuple[str, dict[str, float], float | None, float]] = []
        own_list: dict[str, dict[str, float]] = {}
        for name in ("lightgcn", "content", "hybrid_lightgcn"):
            start = time.perf_counter()
            model = make_model(name, config.params.get(name)).fit(prepared.fit_data)
            if name != "lightgcn":  # LightGCN has nothing to rank new items by
                own_list[name] = metrics(NewItemsOnly(model, prepared.fit_data.train.item_counts() == 0), prepared)
            rows.append((name if name != "hybrid_lightgcn" else "hybrid_lightgcn, calibrated", metrics(model, prepared), None,
                         time.perf_counter() - start))
        assert isinstance(model, HybridRecommenderModel)
        chosen = f"s = {model.content_scale_:g}, τ = {model.tau_:g}"
        train, valid = prepared.fit_data.train.matrix(), prepared.fit_data.valid.matrix()
        cold = (model.item_counts_ == 0).cpu().numpy()
        priced = cold_slot_loss(model.user_embeddings_, model.graph_items_, model.content_items_, cold, train, valid,
                                (model.content_scale_, *SCALES))
        rows[-1] = (*rows[-1][:2], priced[model.content_scale_], rows[-1][3])
        for scale in SCALES:
            model.set_blend(content_scale=scale)
            rows.append((f"hybrid_lightgcn, s = {scale}", metrics(model, prepared), priced[scale], float("nan")))
        warm, content = rows[0][1]["warm recall"], rows[1][1]
        share, n_hits = last_slot_share(model, prepared)
        print(f"\n### {config.name}: {len(prepared.users)} test users; calibrated {chosen}; one cold slot per "
              f"user would cost {share:.1%} of validation warm recall (its hits at rank 20; {n_hits} hits in the "
              f"top 20 in all)\n")
        print("| model | warm R@20 | warm vs lightgcn | validation-priced warm loss | warm N@20 | cold R@20 | cold N@20 "
              "| cold beats content on both | fit s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, m, price, seconds in rows:
            beats = m["cold recall"] > content["cold recall"] and m["cold ndcg"] > content["cold ndcg"]
            print(f"| {label} | {m['warm recall']:.4f} | {m['warm recall'] / warm:.1%} | "
                  f"{'' if price is None else f'{price:.1%}'} | {m['warm ndcg']:.4f} | "
                  f"{m['cold recall']:.4f} | {m['cold ndcg']:.4f} | {'yes' if beats else 'no'} | "
                  f"{'' if seconds != seconds else f'{seconds:.0f}'} |")
        print("\nNew items in a list of their own (warm items never shown), cold Recall / NDCG@20: "
              + "; ".join(f"{name} {m['cold recall']:.4f} / {m['cold ndcg']:.4f}" for name, m in own_list.items()))


if __name__ == "__main__":
    main()
