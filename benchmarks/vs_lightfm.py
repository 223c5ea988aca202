"""LightFM with text item features vs ``hybrid`` (and ``lightgcn``, ``content``) on the cold-item splits.

LightFM (Kula 2015) is the classic hybrid of collaborative and content signals: an item's vector is
the sum of the embeddings of its features, so an item with text features but no interactions still
gets a vector. Here it sees exactly what the library's models see: the split is built once per data
set by :func:`hybrid.evaluation.evaluate.prepare`, LightFM is fitted on ``prepared.fit_data.train`` (epochs
chosen on ``prepared.fit_data.valid``, as the BPR models' early stopping does), the same known
items are masked by :func:`hybrid.retrieval.ranking.top_k`, and everything is scored by
:func:`hybrid.evaluation.evaluate.evaluate_rankings`.

Item features, two variants, both fitted; LightFM is given the one with the higher validation
Recall@20 (:class:`LightFMChosen`): the best of each variant's checks on ``prepared.fit_data.valid``,
the same validation interactions its epochs are chosen on. The test split plays no part in the
choice, and only the chosen variant is scored on it (both variants' validation curves are printed):

    tokens   identity (items with training interactions only; a cold item has no trained id) +
             bag-of-words tokens of the item text (title, genres and, for ml-latest-small, tags;
             tokens in at least 2 items), each row L1-normalised as ``lightfm.data.Dataset`` does.
    minilm   identity (warm items) + the same all-MiniLM-L6-v2 vectors the ``hybrid`` and
             ``content`` models use (:func:`hybrid.data.text_features.encode_texts`), projected on
             their top ``--minilm-dims`` principal components (default 32) and rescaled to unit
             length. Why not all 384 columns: LightFM updates every feature of an item in every
             WARP step, so every dense column adds to every step, and the full vectors make an
             epoch far slower than the tokens' few sparse ones; ``--minilm-dims 384`` runs it anyway.

LightFM: WARP loss, 64 components, adagrad lr 0.05, L2 1e-6 on item and user features, 2 threads,
seeded; validation Recall@20 checked every 5 epochs, stopping after 3 checks without a gain (the
library's early-stopping defaults), best epoch kept. ``fit s`` includes building the features and
fitting both variants (the choice is part of the fit; the library models encode text inside fit,
and the MiniLM vectors come from the on-disk cache in both cases).

LightFM is a ``bench`` extra (``pip install -e .[bench]`` installs ``lightfm-next``, the maintained
fork: the original ``lightfm`` sdist no longer builds), never a runtime dependency.

Run: python benchmarks/vs_lightfm.py --data-root /work/shared/data
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from typing_extensions import Self

from hybrid.config import load_config
from hybrid.data.datasets import load_dataset
from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.evaluation.prepare import Prepared, prepare
from hybrid.evaluation.scoring import evaluate_rankings
from hybrid.models.base import FitData, Recommender, import_builtins, make_model
from hybrid.models.bpr import BPRModel, validation_metrics
from hybrid.retrieval.ranking import top_k

try:
    from lightfm import LightFM
except ImportError as error:  # pragma: no cover - a bench extra
    raise SystemExit("this benchmark needs LightFM: pip install -e '.[bench]' (installs lightfm-next)") from error

from sklearn.feature_extraction.text import CountVectorizer

import_builtins()  # every built-in model's module now: the run uses one version of their code

logger = logging.getLogger(__name__)

DEFAULT_CONFIGS = (
    "configs/ml100k_cold_items.yaml", "configs/ml_latest_small_cold_items.yaml", "configs/ml1m_cold_items.yaml",
    "configs/amazon_scientific_cold_items.yaml", "configs/lastfm_cold_items.yaml",
)
LIBRARY_MODELS = ("hybrid", "lightgcn", "gf_cf", "content")
K = 20


class _Fixed(BPRModel):
    """Fixed final embeddings, so :func:`hybrid.models.train.validation_metrics` can score them."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        super().__init__()
        self.users, self.items = users, items

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users, self.items


class LightFMRecommender(Recommender):
    """LightFM (WARP) with item features from the item text, as a library ``Recommender``.

    score(u, i) = e_u · e_i + b_i, with e_i = Σ_f x_if e_f over the item's features (the user bias
    is constant per user and left out). Held as augmented vectors [e_u, 1] · [e_i, b_i].

    Args:
        features: "tokens" (identity + bag-of-words) or "minilm" (identity + MiniLM vectors).
        epochs: at most this many epochs; the best of every ``eval_every`` by validation Recall@20 is
            kept, and training stops after ``patience`` checks without a gain.
        minilm_dims: principal components of the MiniLM vectors kept (384: all, no projection).
        no_components / learning_rate / alpha: LightFM's settings (alpha: both L2 penalties).
        num_threads: LightFM's Hogwild threads.
    """

    def __init__(
        self, features: Literal["tokens", "minilm"], epochs: int = 50, no_components: int = 64,
        learning_rate: float = 0.05, alpha: float = 1e-6, eval_every: int = 5, patience: int = 3,
        minilm_dims: int = 32, num_threads: int = 2,
    ) -> None:
        self.features = features
        self.epochs = epochs
        self.no_components = no_components
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.eval_every = eval_every
        self.patience = patience
        self.minilm_dims = minilm_dims
        self.num_threads = num_threads

    def item_features(self, data: FitData) -> sp.csr_matrix:
        """[n_items, n_features]: identity of items with training interactions + text features."""
        if data.item_text is None:
            raise ValueError("LightFM here needs item text; this data set has none")
        warm = data.train.item_counts() > 0
        identity = sp.diags(warm.astype(np.float32), format="csr")[:, np.flatnonzero(warm)]
        if self.features == "tokens":
            tokens = CountVectorizer(min_df=2, binary=True, dtype=np.float32).fit_transform(data.item_text)
            both = sp.hstack([identity, tokens], format="csr", dtype=np.float32)
            sums = np.asarray(both.sum(1)).ravel()
            return (sp.diags(1.0 / np.maximum(sums, 1e-12)) @ both).astype(np.float32).tocsr()
        vectors = encode_texts(data.item_text, EncoderConfig())
        if self.minilm_dims < vectors.shape[1]:
            centred = vectors - vectors.mean(0)
            _, _, components = np.linalg.svd(centred, full_matrices=False)
            vectors = centred @ components[: self.minilm_dims].T
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return sp.hstack([identity, sp.csr_matrix(vectors)], format="csr", dtype=np.float32)

    def _vectors(self, features: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
        _, user_emb = self.model_.get_user_representations()
        item_bias, item_emb = self.model_.get_item_representations(features)
        users = np.hstack([user_emb, np.ones((len(user_emb), 1), np.float32)])
        items = np.hstack([item_emb, item_bias[:, None]])
        return torch.as_tensor(users, dtype=torch.float32), torch.as_tensor(items, dtype=torch.float32)

    def fit(self, data: FitData) -> Self:
        features = self.item_features(data)
        train = data.train.matrix().tocoo()
        self.model_ = LightFM(
            no_components=self.no_components, loss="warp", learning_rate=self.learning_rate,
            item_alpha=self.alpha, user_alpha=self.alpha, random_state=data.seed,
        )
        valid = None if data.valid is None or len(data.valid) == 0 else data.valid.matrix()
        train_csr = train.tocsr()
        best, self.curve_ = -1.0, {}
        self.valid_recall_: float | None = None  # the kept epoch's validation Recall@20 (None: no validation)
        done, checks_without_gain = 0, 0
        while done < self.epochs and checks_without_gain < self.patience:
            step = min(self.eval_every, self.epochs - done)
            self.model_.fit_partial(train, item_features=features, epochs=step, num_threads=self.num_threads)
            done += step
            users, items = self._vectors(features)
            if valid is None:
                self.users_, self.items_, self.epochs_ = users, items, done
                continue
            recall = validation_metrics(_Fixed(users, items), train_csr, valid)["valid_recall@20"]
            self.curve_[done] = round(recall, 4)
            logger.info("lightfm-%s: epoch %d, validation Recall@20 %.4f", self.features, done, recall)
            if recall > best:
                best, self.users_, self.items_, self.epochs_ = recall, users, items, done
                self.valid_recall_ = recall
                checks_without_gain = 0
            else:
                checks_without_gain += 1
        logger.info("lightfm-%s: validation Recall@20 by epoch %s -> %d", self.features, self.curve_, self.epochs_)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.users_[torch.as_tensor(users, dtype=torch.int64)] @ self.items_.T


class LightFMChosen(Recommender):
    """LightFM with its item features chosen on validation: each variant of ``features`` is fitted
    (:class:`LightFMRecommender`, epochs chosen on ``data.valid``) and the one with the higher
    validation Recall@20 is kept; ties go to the earlier variant. Nothing of the test split is read.

    Args:
        features: the variants tried, in order.
        **params: :class:`LightFMRecommender`'s other arguments, the same for every variant.
    """

    def __init__(self, features: tuple[Literal["tokens", "minilm"], ...] = ("tokens", "minilm"), **params: Any) -> None:
        self.features = features
        self.params = params

    def fit(self, data: FitData) -> Self:
        if data.valid is None or len(data.valid) == 0:
            raise ValueError("LightFMChosen chooses LightFM's item features on validation interactions, and this "
                             "split has none: set split.valid_per_user >= 1 in the config")
        if not self.features:
            raise ValueError("features must name at least one variant ('tokens', 'minilm'), got none")
        self.variants_: dict[str, LightFMRecommender] = {}
        for features in self.features:
            self.variants_[features] = LightFMRecommender(features, **self.params).fit(data)
        recalls = {name: model.valid_recall_ for name, model in self.variants_.items()}
        self.features_ = max(recalls, key=lambda name: -1.0 if recalls[name] is None else recalls[name])
        self.model_ = self.variants_[self.features_]
        logger.info("lightfm: features %s chosen on validation Recall@20 %s", self.features_, recalls)
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> torch.Tensor:
        return self.model_.score(users, history)

    def chosen(self) -> dict[str, Any]:
        return {"features": self.features_, "epochs": self.model_.epochs_,
                f"valid_recall@{K} by features": {n: m.valid_recall_ for n, m in self.variants_.items()}}


def evaluate(model: Recommender, prepared: Prepared) -> dict[str, Any]:
    """Fit on the prepared split, rank its test users with known items masked, score every group."""
    start = time.perf_counter()
    model.fit(prepared.fit_data)
    fit_seconds = time.perf_counter() - start
    top, _ = top_k(model, prepared.users, prepared.history, K)
    result = evaluate_rankings(top, prepared, [K])
    result["fit_seconds"] = fit_seconds
    return result


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"| model | cold R@{K} | cold N@{K} | warm R@{K} | warm N@{K} | all R@{K} | all N@{K} | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        cells = [f"{r[g][f'{m}@{K}']:.4f}" for g in ("cold", "warm", "all") for m in ("recall", "ndcg")]
        lines.append(f"| {name} | {' | '.join(cells)} | {r['fit_seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--epochs", type=int, default=50, help="LightFM epochs at most (best on validation kept)")
    parser.add_argument("--threads", type=int, default=2, help="LightFM threads")
    parser.add_argument("--minilm-dims", type=int, default=32,
                        help="principal components of the MiniLM vectors given to LightFM (384: all)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for path in args.configs:
        config = load_config(path)
        bundle = load_dataset(config.data.name, args.data_root, config.data.path)
        prepared = prepare(bundle, config, torch.device("cpu"))
        rows: dict[str, dict[str, Any]] = {}
        lightfm = LightFMChosen(epochs=args.epochs, num_threads=args.threads, minilm_dims=args.minilm_dims)
        result = evaluate(lightfm, prepared)
        label = lightfm.features_ if lightfm.features_ == "tokens" else f"minilm pca-{args.minilm_dims}"
        rows[f"lightfm ({label} chosen on validation, {lightfm.model_.epochs_} ep)"] = result
        for name in LIBRARY_MODELS:
            rows[name] = evaluate(make_model(name, config.params.get(name)), prepared)
        train = prepared.fit_data.train
        n_cold = int((train.item_counts() == 0).sum())
        print(f"\n### {bundle.name}, {prepared.split.name}: {len(prepared.users)} test users, "
              f"{train.n_items} items ({n_cold} cold), {len(train)} training interactions\n")
        print(table(rows))
        for features, model in lightfm.variants_.items():
            print(f"\nlightfm ({features}) validation Recall@{K} by epoch: {model.curve_}")
        print(f"lightfm: {lightfm.features_} chosen on validation ({lightfm.chosen()})")


if __name__ == "__main__":
    main()
