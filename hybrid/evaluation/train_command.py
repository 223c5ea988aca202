"""``hybrid-train``: fit one model of an experiment config on its training split and save it.

The data, the split and the training data are made as ``hybrid-eval`` makes them
(:func:`~hybrid.evaluation.prepare.load_bundle`, :func:`~hybrid.evaluation.prepare.prepare`:
the base config's split, which is hybrid-eval's first seed), the model is fitted as hybrid-eval
fits it (:func:`~hybrid.evaluation.run.fitted_model`) and saved in its own ``save`` format
into ``--out``, beside ``train.json``: world_size, valid_recall@20 and valid_ndcg@20 of the saved
model on the split's validation interactions (the trainer's early-stopping metric), seconds,
epochs, triples_per_second, peak_rss_bytes (the largest of any rank), the command and what the
fit chose.

Data parallel over N processes: launch it with ``torchrun --nproc_per_node N`` or ``accelerate
launch --multi_gpu --num_processes N --no_python hybrid-train ...`` (on a machine without CUDA
that runs N CPU processes over gloo; ``accelerate launch --cpu`` starts a single process unless
MPI is set up). Every rank then trains its shard of each epoch (:mod:`hybrid.models.distributed`)
and rank 0 alone validates and writes ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.config import ExperimentConfig, load_config
from hybrid.device import resolve_device
from hybrid.evaluation.evaluate import resolve_config
from hybrid.evaluation.prepare import load_bundle, prepare
from hybrid.evaluation.provenance import peak_rss_bytes
from hybrid.evaluation.run import fitted_model
from hybrid.metrics import ranking_metrics
from hybrid.models import distributed
from hybrid.models.base import FitData, Recommender
from hybrid.models.bpr import validation_metrics
from hybrid.models.embedding import EmbeddingRecommender
from hybrid.retrieval.build import build_model
from hybrid.retrieval.ranking import top_k_masked

logger = logging.getLogger(__name__)

TRAIN_FILE = "train.json"


def valid_metrics(model: Recommender, data: FitData) -> dict[str, float | None]:
    """valid_recall@20 and valid_ndcg@20 on ``data.valid``, training items masked: the trainer's
    :func:`~hybrid.models.train.validation_metrics` for a BPR model, the same metric from
    :meth:`~hybrid.models.base.Recommender.score` for any other; None without a validation set."""
    if data.valid is None or len(data.valid) == 0:
        return {"valid_recall@20": None, "valid_ndcg@20": None}
    train, valid = data.train.matrix(), data.valid.matrix()
    if isinstance(model, EmbeddingRecommender):
        return validation_metrics(model.module_, train, valid)
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    top, _ = top_k_masked(model, users, train, 20, {"all": None}, tie_seed=data.seed)["all"]
    metrics = ranking_metrics(top, valid[users], [20])
    return {"valid_recall@20": metrics["recall@20"], "valid_ndcg@20": metrics["ndcg@20"]}


def train(config: ExperimentConfig, model_name: str, data_root: str | None, out: Path,
          device: str | None = None, command: str | None = None) -> dict[str, Any]:
    """Fit ``model_name`` on ``config``'s training split and save it into ``out`` (rank 0 only,
    under a distributed launch); returns the ``train.json`` record.

    Raises:
        ValueError: an unknown model or parameter, or a model with no ``save`` format (checked
            before any data is read).
    """
    params = config.params.get(model_name) or {}
    model = build_model(model_name, params)  # a bad name or parameter fails here, before the data
    if not callable(getattr(model, "save", None)):
        raise ValueError(f"model {model_name!r} has no save format, so hybrid-train cannot write it; "
                         "train a model that saves (e.g. mf, lightgcn, ngcf, gf_cf)")
    world, torch_device = distributed.join(resolve_device(device or config.device))
    if world is not None and not isinstance(model, EmbeddingRecommender):
        logger.warning("%s is not a BPR model: every one of the %d ranks fits it whole (a graph filter's "
                       "randomised SVD over row shards)", model_name, world.size)
    prepared = prepare(load_bundle(config, data_root), config, torch_device)
    data = prepared.fit_data
    model, seconds = fitted_model(model_name, params, config, prepared, {})
    chosen = model.chosen()
    epochs = chosen.get("epochs_run")
    history = getattr(getattr(model, "result_", None), "history", [])
    train_seconds = sum(record["seconds"] for record in history)
    peak = peak_rss_bytes()
    record: dict[str, Any] = {
        "command": command, "model": model_name, "world_size": 1 if world is None else world.size,
        "device": str(torch_device), "n_train": len(data.train),
        "epochs": epochs, "seconds": round(seconds, 3), "train_seconds": round(train_seconds, 3),
        # training triples drawn per second of training steps (validation excluded), over all ranks
        "triples_per_second": round(len(history) * len(data.train) / train_seconds, 1) if history else None,
    }
    if world is not None:
        peak = distributed.max_over_ranks(peak, torch_device)
        if isinstance(model, EmbeddingRecommender):
            record["rank_parameter_digests"] = distributed.gather_digests(model.module_, world)
    if world is None or world.is_main:
        record.update(valid_metrics(model, data))
        record.update(peak_rss_bytes=peak, chosen=chosen)
        model.save(out)  # replaces the folder, so train.json comes after
        (out / TRAIN_FILE).write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> None:
    from hybrid.models.base import model_names

    parser = argparse.ArgumentParser(prog="hybrid-train", description=__doc__.splitlines()[0],
                                     epilog=f"models: {', '.join(model_names())}.")
    parser.add_argument("--config", required=True, help="YAML experiment config: a path, or a packaged config's name")
    parser.add_argument("--model", required=True, help="the model to fit (its parameters: the config's params.<model>)")
    parser.add_argument("--out", required=True, help="folder to save the model and train.json into (replaced)")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"),
                        help="folder holding the data sets (default: $HYBRID_DATA_ROOT)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
    args = parser.parse_args(argv)
    main_rank = distributed.launched_rank() == 0  # other ranks log warnings only
    level = args.log_level.upper() if main_rank else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command = "hybrid-train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    start = time.perf_counter()
    try:
        config = load_config(resolve_config(args.config))
        record = train(config, args.model, args.data_root, Path(args.out), args.device, command)
        distributed.leave()
    except (ValueError, FileNotFoundError, PermissionError, KeyError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        parser.exit(2, f"hybrid-train: error: {message}\n")
    if main_rank:
        recall = record.get("valid_recall@20")
        print(f"{args.model}: {record['epochs']} epochs in {record['seconds']:.1f} s on {record['world_size']} "
              f"process(es), valid recall@20 {'n/a' if recall is None else f'{recall:.4f}'}; "
              f"wrote {args.out} ({time.perf_counter() - start:.1f} s in all)")
    if record["world_size"] > 1:
        # Everything is written and the process group is gone; skip the interpreter's teardown,
        # where gloo's worker threads can meet C++ static destructors and abort a finished rank.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
