"""``hybrid-recommend --ray [ADDRESS]``: the same chunks, ranked by Ray actors that each load the model once.

The job is :mod:`hybrid.serving.batch`'s (its parts folder and key, its chunk files, their merge);
only which process ranks a chunk changes. The chunks not yet written are handed one at a time to
``workers`` Ray actors (:func:`hybrid.parallel.run_on_actors`, :class:`ChunkRanker`), each of
which loads the saved model once and writes its chunks' Parquet files exactly as the single process
does: the same lists (scores to float rounding: an actor runs torch on its own threads), and a run
killed half-way resumes with or without Ray.

    hybrid-recommend --model m --out recs.parquet --ray               # a laptop: local workers
    ray start --head; hybrid-recommend ... --ray auto                 # a cluster: ray.init(address=...)

On a cluster, ``--model`` and ``--out`` must be paths every node reads and writes (a shared or
network file system). Ray is an optional extra: ``pip install 'hybrid-coldstart[distributed]'``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hybrid.parallel import import_ray, ray_session, run_on_actors
from hybrid.recommender import HybridRecommender
from hybrid.serving.chunks import write_chunk  # the single process's writer: the same files

logger = logging.getLogger(__name__)


class ChunkRanker:
    """A Ray actor: the saved model, loaded once, ranking whole chunks (:func:`write_chunk`)."""

    def __init__(self, model_dir: str, users: list[Any], chunk_size: int, k: int, explain: bool, device: str,
                 threads: int) -> None:
        torch.set_num_threads(threads)
        self.model = HybridRecommender.load(model_dir, device=device)
        self.users = import_ray().get(users[0])  # the ids, put in the object store once
        self.chunk_size, self.k, self.explain = chunk_size, k, explain

    def __call__(self, chunk: dict[str, Any]) -> str:
        """Write one chunk (``start``: its first user's position, ``path``: its file)."""
        start = chunk["start"]
        write_chunk(self.model, self.users[start:start + self.chunk_size], self.k, self.explain, Path(chunk["path"]))
        return chunk["path"]


def rank_chunks(model_dir: Path, users: pd.Index, todo: list[tuple[int, Path]], chunk_size: int, k: int,
                explain: bool, device: str, address: str, workers: int | None, threads: int = 1) -> int:
    """Write the chunks ``todo`` ((first user's position, file)) with Ray actors of ``threads``
    torch threads (and Ray CPUs) each, in the session :func:`hybrid.parallel.ray_session` opens
    at ``address``; returns how many actors ran."""
    with ray_session(address, workers, threads) as (ray, workers):
        ids = [ray.put(users)]  # in a list: an actor's argument, not resolved for it
        actors = run_on_actors(ray, [{"start": start, "path": str(path)} for start, path in todo], ChunkRanker,
                               (str(model_dir), ids, chunk_size, k, explain, device, threads), workers, threads)
        logger.info("hybrid-recommend: %d chunks ranked by %d Ray actors", len(todo), actors)
        return actors
