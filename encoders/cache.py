"""On-disk cache of text vectors, so re-running an evaluation does not re-encode the catalogue.

Layout: one folder per encoder name, holding append-only shards written by each call that
met new texts::

    <cache_dir>/<slug>-<sha256(name)[:16]>/
        name.txt                       the encoder name, for whoever clears the cache by hand
        <shard>.vectors.npy            float32 [n, dim]
        <shard>.keys.npy               sha256 hex digest of each row's text, |S64 [n]

A shard is published by writing its keys file last, each file via a temporary name and an
atomic rename, so a reader (another process included) never sees half a shard. Shards are
never rewritten: two processes that encode the same text both store it, harmlessly.

In memory the keys are held in a few pandas indexes (C hash tables), not a Python dict, and
looked up a call at a time: at a million texts a dict of per-key tuples took seconds to build
and query, and a gather through one [n, dim] temporary doubled the memory of the read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from encoders.base import TextEncoder, check_batch_size, check_texts

logger = logging.getLogger(__name__)

_KEYS_SUFFIX = ".keys.npy"
_VECTORS_SUFFIX = ".vectors.npy"
_GATHER_ROWS = 16384  # rows copied per step: the read's only temporary stays this small


def text_key(text: str) -> str:
    """Cache key of one text: the sha256 hex digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """Cache keys of ``texts`` as the shards store them (|S64), for vectorised lookups."""
    return np.array([text_key(text) for text in texts], dtype="S64")


def _first_of_each(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The ``positions`` whose key has not occurred at an earlier one of them, in order."""
    return positions[~pd.Index(keys[positions]).duplicated(keep="first")]


@dataclass(frozen=True)
class _Segment:
    """Part of the key index: distinct keys, each with the shard and row that hold its vector."""

    keys: pd.Index
    shard: np.ndarray  # int32
    row: np.ndarray  # int64


def _merged(earlier: _Segment, later: _Segment) -> _Segment:
    """One segment for two; a key both hold keeps the earlier's place (the first seen wins)."""
    keys = earlier.keys.append(later.keys)
    keep = ~keys.duplicated(keep="first")
    shard = np.concatenate([earlier.shard, later.shard])[keep]
    return _Segment(keys[keep], shard, np.concatenate([earlier.row, later.row])[keep])


def _save_atomic(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, array)
    os.replace(temporary, path)


class CachedEncoder:
    """Wrap an encoder so that each distinct text is encoded once per encoder name, ever.

    Only texts missing from the cache (and each of them once, however often it repeats in the
    call) reach the wrapped encoder; the rest are read back bit for bit. The wrapped encoder is
    not asked anything, its width included, while the cache holds every text: an encoder that
    loads its model on first use (as the two backends do) is never loaded for a warm cache.

    Args:
        encoder: The encoder to cache. Its ``name`` must change whenever its vectors would.
        cache_dir: Folder for all cached encoders; created if it does not exist.

    Attributes:
        name: The wrapped encoder's name (caching does not change the vectors).
        dim: The cached vectors' width; the wrapped encoder's while nothing is cached.
        encoded_last_call: How many texts the last :meth:`encode` passed to the wrapped encoder;
            0 when everything came from the cache.
    """

    def __init__(self, encoder: TextEncoder, cache_dir: str | os.PathLike[str]) -> None:
        self.encoder = encoder
        self.cache_dir = Path(cache_dir)
        self.encoded_last_call = 0
        self._shards: list[np.ndarray] = []  # memory-mapped [n_s, dim] arrays
        # Earliest shards first, each segment over twice the size of the next: a lookup asks a
        # few hash tables, and a new shard is merged in without rebuilding the whole index.
        self._segments: list[_Segment] = []
        self._seen_shards: set[str] = set()
        self._width: int | None = None  # of the indexed shards, which all share it

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        self._load_new_shards()
        return self.encoder.dim if self._width is None else self._width

    @property
    def folder(self) -> Path:
        """This encoder's folder inside ``cache_dir``: a readable slug plus a hash of the name."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)[-60:]
        digest = hashlib.sha256(self.name.encode("utf-8")).hexdigest()[:16]
        return self.cache_dir / f"{slug}-{digest}"

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Vectors for ``texts`` from the cache, encoding and storing only the missing ones.

        Args:
            texts: The texts; empty strings are allowed.
            batch_size: Passed to the wrapped encoder.
            show_progress: Passed to the wrapped encoder.

        Returns:
            float32 array ``[len(texts), dim]``, in input order.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str`` (names the bad index).
            ValueError: ``batch_size`` is not a positive int, or the wrapped encoder returned
                an array of the wrong shape.
        """
        items = check_texts(texts)
        check_batch_size(batch_size)
        self._load_new_shards()
        keys = text_keys(items)
        shard, row = self._locate(keys)
        absent = np.flatnonzero(shard < 0)
        missing = _first_of_each(keys, absent)
        if len(missing):
            self._store([items[i] for i in missing], keys[missing], batch_size, show_progress)
            shard[absent], row[absent] = self._locate(keys[absent])
        self.encoded_last_call = len(missing)
        logger.info(
            "%s: %d texts, %d from cache, %d encoded",
            self.name,
            len(items),
            len(items) - len(missing),
            len(missing),
        )
        return self._gather(shard, row)

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct ``texts`` the cache does not hold yet (shards other processes wrote included),
        in first-seen order: what another process (a Ray actor) may encode into it."""
        self._load_new_shards()
        items = check_texts(texts)
        keys = text_keys(items)
        return [items[i] for i in _first_of_each(keys, np.flatnonzero(self._locate(keys)[0] < 0))]

    def _store(
        self, texts: list[str], keys: np.ndarray, batch_size: int, show_progress: bool
    ) -> None:
        """Encode ``texts`` (distinct, none cached) and write them as a new shard."""
        vectors = self.encoder.encode(texts, batch_size, show_progress)
        expected = (len(texts), self.dim)
        if vectors.shape != expected:
            raise ValueError(
                f"encoder {self.name} returned shape {vectors.shape}, expected {expected} "
                f"(its width, or that of the vectors cached under its name in {self.folder}: "
                "delete that folder if the name no longer identifies the vectors)"
            )
        self._write_shard(keys, np.asarray(vectors, dtype=np.float32))

    def _locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's shard (-1 where none holds it) and row there, the first-seen shard winning."""
        shard = np.full(len(keys), -1, dtype=np.int32)
        row = np.zeros(len(keys), dtype=np.int64)
        todo = np.arange(len(keys))
        for segment in self._segments:
            if not len(todo):
                break
            hit = segment.keys.get_indexer(keys[todo])
            found = hit >= 0
            shard[todo[found]] = segment.shard[hit[found]]
            row[todo[found]] = segment.row[hit[found]]
            todo = todo[~found]
        return shard, row

    def _gather(self, shard: np.ndarray, row: np.ndarray) -> np.ndarray:
        """The rows, copied shard by shard in bounded steps (no temporary the size of the output)."""
        if len(shard) and shard.min() < 0:
            raise KeyError("a text to gather is in no cache shard")  # -1 would read the last shard
        out = np.empty((len(shard), self.dim), dtype=np.float32)
        order = np.argsort(shard, kind="stable")  # one sort, not a pass over every text per shard
        edges = np.flatnonzero(np.diff(shard[order])) + 1
        for positions in np.split(order, edges):
            if not len(positions):
                continue
            vectors = self._shards[shard[positions[0]]]
            for start in range(0, len(positions), _GATHER_ROWS):
                part = positions[start : start + _GATHER_ROWS]
                out[part] = vectors[row[part]]
        return out

    def _load_new_shards(self) -> None:
        """Index shards written since the last call, by this process or another one."""
        if not self.folder.is_dir():
            return
        for keys_path in sorted(self.folder.glob(f"*{_KEYS_SUFFIX}")):
            stem = keys_path.name[: -len(_KEYS_SUFFIX)]
            if stem in self._seen_shards:
                continue
            self._seen_shards.add(stem)
            shard = self._read_shard(keys_path, stem)
            if shard is not None:
                self._add_shard(*shard)

    def _read_shard(self, keys_path: Path, stem: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A shard's keys and memory-mapped vectors; None (with a warning) if it is unusable."""
        try:
            keys = np.load(keys_path)
            vectors = np.load(self.folder / f"{stem}{_VECTORS_SUFFIX}", mmap_mode="r")
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable cache shard %s (%s); delete it", keys_path, error)
            return None
        fits = (
            keys.ndim == 1
            and keys.dtype.kind == "S"
            and vectors.ndim == 2
            and len(vectors) == len(keys)
            and self._width in (None, vectors.shape[1])
        )
        if not fits or vectors.dtype != np.float32:
            logger.warning(
                "ignoring cache shard %s: %s %s does not match keys %s %s of width %s; delete it",
                keys_path,
                vectors.shape,
                vectors.dtype,
                keys.shape,
                keys.dtype,
                self._width or "any",
            )
            return None
        return keys, vectors

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        name_file = folder / "name.txt"
        if not name_file.exists():
            name_file.write_text(self.name + "\n", encoding="utf-8")
        stem = f"shard-{uuid.uuid4().hex}"
        _save_atomic(folder / f"{stem}{_VECTORS_SUFFIX}", vectors)
        _save_atomic(folder / f"{stem}{_KEYS_SUFFIX}", keys)
        self._seen_shards.add(stem)
        self._add_shard(keys, vectors)

    def _add_shard(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Index a shard's keys after all earlier ones, merging segments to keep them few."""
        shard = len(self._shards)
        self._shards.append(vectors)
        self._width = vectors.shape[1]
        index, rows = pd.Index(keys), np.arange(len(keys))
        if not index.is_unique:  # the hash table is_unique builds serves the lookups too
            keep = ~index.duplicated(keep="first")
            index, rows = index[keep], rows[keep]
        segments = self._segments
        segments.append(_Segment(index, np.full(len(rows), shard, np.int32), rows))
        while len(segments) > 1 and len(segments[-2].keys) <= 2 * len(segments[-1].keys):
            later = segments.pop()
            segments[-1] = _merged(segments[-1], later)
