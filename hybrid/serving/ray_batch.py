"""``hybrid-recommend --ray [ADDRESS]``: the same chunks, ranked by Ray actors that each load the model once.

The job is :mod:`hybrid.serving.batch`'s (its parts folder and key, its chunk files, their merge);
only which process ranks a chunk changes. The chunks not yet written become a Ray Dataset, and
``map_batches`` hands them, one at a time, to ``workers`` actors (:class:`ChunkRanker`), each of
which loads the saved model once and writes its chunks' Parquet files exactly as the single process
does: the output is identical, and a run killed half-way resumes with or without Ray.

    hybrid-recommend --model m --out recs.parquet --ray               # a laptop: local workers
    ray start --head; hybrid-recommend ... --ray auto                 # a cluster: ray.init(address=...)

On a cluster, ``--model`` and ``--out`` must be paths every node reads and writes (a shared or
network file system). Ray is an optional extra: ``pip install 'hybrid-coldstart[distributed]'``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hybrid.recommender import HybridRecommender
from hybrid.serving.batch import write_chunk  # the single process's writer: the same files

logger = logging.getLogger(__name__)


def import_ray() -> Any:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ValueError("--ray needs Ray: pip install 'hybrid-coldstart[distributed]'") from error
    return ray


class ChunkRanker:
    """A Ray actor: the saved model, loaded once, ranking whole chunks (:func:`write_chunk`)."""

    def __init__(self, model_dir: str, users: list[Any], chunk_size: int, k: int, explain: bool, device: str,
                 threads: int) -> None:
        torch.set_num_threads(threads)
        self.model = HybridRecommender.load(model_dir, device=device)
        self.users = import_ray().get(users[0])  # the ids, put in the object store once
        self.chunk_size, self.k, self.explain = chunk_size, k, explain

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for start, path in zip(batch["start"].tolist(), batch["path"].tolist(), strict=True):
            write_chunk(self.model, self.users[start:start + self.chunk_size], self.k, self.explain, Path(path))
        return {"path": batch["path"]}


def rank_chunks(model_dir: Path, users: pd.Index, todo: list[tuple[int, Path]], chunk_size: int, k: int,
                explain: bool, device: str, address: str | None, workers: int | None, threads: int = 1) -> int:
    """Write the chunks ``todo`` ((first user's position, file)) with Ray actors; returns how many
    actors ran. ``address`` None starts a local Ray instance of ``workers`` × ``threads`` CPUs
    (default: this machine's CPUs); otherwise it joins that cluster (``auto``: the one
    ``ray start`` made here). ``threads``: torch threads (and Ray CPUs) per actor."""
    ray = import_ray()
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be positive, got {workers}")
    started = not ray.is_initialized()
    if started:
        local = address is None
        ray.init(address=address, num_cpus=(workers or os.cpu_count() or 1) * threads if local else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        workers = min(workers, max(len(todo), 1))
        if todo:
            rows = [{"start": start, "path": str(path)} for start, path in todo]
            ids = [ray.put(users)]  # in a list: an actor's argument, not resolved for it
            ray.data.from_items(rows).map_batches(
                ChunkRanker, fn_constructor_args=(str(model_dir), ids, chunk_size, k, explain, device, threads),
                concurrency=workers, batch_size=1, num_cpus=threads).materialize()
        logger.info("hybrid-recommend: %d chunks ranked by %d Ray actors", len(todo), workers)
        return workers
    finally:
        if started:
            ray.shutdown()
