"""Approximate nearest neighbours by inner product over item vectors, on faiss.

Kinds: ``flat`` (exact, a baseline and the right choice below ~100k items), ``ivf`` (IVF-Flat:
k-means cells, ``nprobe`` of them scanned per query; the default, it builds in seconds to minutes
and its recall is tuned at query time) and ``hnsw`` (a graph index: the best recall per query
time at small batch, slow to build on few cores). Memory: the vectors themselves (n × d × 4
bytes) plus, for HNSW, ~``hnsw_m`` × 8 bytes per item. On a machine with faiss's GPU build and a
CUDA device, ``flat`` and ``ivf`` are searched on the GPU.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from typing_extensions import Self

from hybrid.config import from_dict

logger = logging.getLogger(__name__)

INDEX_FILE = "ann.faiss"
META_FILE = "ann.json"


@dataclass
class AnnConfig:
    """Which index and how hard it searches.

    Attributes:
        kind: "flat", "ivf" or "hnsw" (see the module docstring).
        nlist: IVF cells; None: 4·√n, the usual choice.
        nprobe: IVF cells scanned per query (more: higher recall, slower).
        coarse: how IVF finds a query's nearest cells: "flat" (all centroids scanned) or "hnsw"
            (a graph over the centroids: what makes tens of thousands of cells affordable).
        train_per_cell: k-means sees at most this many vectors per cell (a seeded sample).
        kmeans_iterations: Lloyd iterations of the IVF k-means.
        sq8: IVF stores each vector as 8-bit scalars (IVF-SQ8: a quarter of the memory, scores
            approximate), not as float32.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build effort.
        ef_search: HNSW search effort (≥ the k asked for).
        seed: makes the IVF sample and k-means repeatable.
    """

    kind: Literal["flat", "ivf", "hnsw"] = "ivf"
    nlist: int | None = None
    nprobe: int = 32
    coarse: Literal["flat", "hnsw"] = "flat"
    train_per_cell: int = 64
    kmeans_iterations: int = 10
    sq8: bool = False
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    seed: int = 0

    def validate(self) -> None:
        if self.kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"retrieval.kind must be 'flat', 'ivf' or 'hnsw', got {self.kind!r}")
        if self.coarse not in ("flat", "hnsw"):
            raise ValueError(f"retrieval.coarse must be 'flat' or 'hnsw', got {self.coarse!r}")
        for name in ("nprobe", "train_per_cell", "kmeans_iterations", "hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise ValueError(f"retrieval.{name} must be >= 1, got {getattr(self, name)}")
        if self.nlist is not None and self.nlist < 1:
            raise ValueError(f"retrieval.nlist must be >= 1, got {self.nlist}")


class AnnIndex:
    """An inner-product index over item vectors [n, d]; ``search`` returns item positions."""

    def __init__(self, config: AnnConfig | dict | None = None) -> None:
        if isinstance(config, dict) or config is None:
            config = from_dict(AnnConfig, config or {}, "retrieval")
        config.validate()
        self.config = config

    def build(self, vectors: np.ndarray) -> Self:
        """Index ``vectors`` (float32 [n, d]); IVF trains its cells on a seeded sample first."""
        vectors = _float32(vectors)
        n, d = vectors.shape
        start = time.perf_counter()
        config = self.config
        if config.kind == "flat" or n < 2:
            index = faiss.IndexFlatIP(d)
        elif config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
        else:
            nlist = max(1, min(config.nlist or round(4 * math.sqrt(n)), n))
            quantizer = (faiss.IndexFlatIP(d) if config.coarse == "flat"
                         else faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT))
            index = (faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                   faiss.METRIC_INNER_PRODUCT) if config.sq8
                     else faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT))
            size = min(n, nlist * config.train_per_cell)
            sample = np.random.default_rng(config.seed).choice(n, size, replace=False) if size < n else slice(None)
            index.cp.seed, index.cp.niter = config.seed, config.kmeans_iterations
            index.train(vectors[sample])
        index.add(vectors)
        self.index_ = _to_gpu(index)
        logger.info("ann: %s index over %d x %d vectors in %.1f s", config.kind, n, d, time.perf_counter() - start)
        return self

    @property
    def size(self) -> int:
        return int(self.index_.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Append items (positions continue from :attr:`size`); IVF places them in its trained cells."""
        self.index_.add(_float32(vectors))

    def cloned(self) -> AnnIndex:
        """An independent copy (adding to it leaves this index as it was)."""
        index = faiss.index_gpu_to_cpu(self.index_) if _on_gpu(self.index_) else self.index_
        copy = type(self)(self.config)
        copy.index_ = _to_gpu(faiss.clone_index(index))
        return copy

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [b, k], item positions int64 [b, k]), best first; -1 where fewer than k exist."""
        queries = _float32(queries)
        config = self.config
        if config.kind == "ivf":
            ivf = faiss.extract_index_ivf(self.index_)
            ivf.nprobe = config.nprobe
            if config.coarse == "hnsw":
                faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(config.ef_search, config.nprobe)
        elif config.kind == "hnsw":
            self.index_.hnsw.efSearch = max(config.ef_search, k)
        return self.index_.search(queries, min(k, max(self.size, 1)))

    def to_bytes(self) -> np.ndarray:
        """The index serialised (uint8), e.g. for another process to search (:meth:`from_bytes`)."""
        return faiss.serialize_index(faiss.index_gpu_to_cpu(self.index_) if _on_gpu(self.index_) else self.index_)

    @classmethod
    def from_bytes(cls, config: AnnConfig | dict, data: np.ndarray) -> Self:
        ann = cls(config)
        ann.index_ = _to_gpu(faiss.deserialize_index(np.asarray(data)))
        return ann

    def save(self, folder: Path) -> None:
        """Write the index and its settings into ``folder`` (part of a model's atomic save)."""
        index = faiss.index_gpu_to_cpu(self.index_) if _on_gpu(self.index_) else self.index_
        faiss.write_index(index, str(folder / INDEX_FILE))
        (folder / META_FILE).write_text(json.dumps({"config": asdict(self.config), "size": self.size}))

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = json.loads((folder / META_FILE).read_text())
        ann = cls(meta["config"])
        ann.index_ = _to_gpu(faiss.read_index(str(folder / INDEX_FILE)))
        if ann.size != meta["size"]:
            raise ValueError(f"{folder / INDEX_FILE} holds {ann.size} vectors, {folder / META_FILE} says {meta['size']}")
        return ann


def _float32(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be 2-D [n, d], got shape {vectors.shape}")
    return vectors


def _to_gpu(index: faiss.Index) -> faiss.Index:
    """The index on all GPUs where faiss has them (flat and IVF); unchanged otherwise."""
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    hnsw = isinstance(index, faiss.IndexHNSWFlat) or (
        isinstance(index, faiss.IndexIVF) and isinstance(faiss.downcast_index(index.quantizer), faiss.IndexHNSWFlat))
    if gpus and not hnsw:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def _on_gpu(index: faiss.Index) -> bool:
    return "Gpu" in type(index).__name__
