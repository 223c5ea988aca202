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
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from encoders.base import TextEncoder, check_batch_size, check_texts

logger = logging.getLogger(__name__)

_KEYS_SUFFIX = ".keys.npy"
_VECTORS_SUFFIX = ".vectors.npy"


def text_key(text: str) -> str:
    """Cache key of one text: the sha256 hex digest of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        self._index: dict[str, tuple[int, int]] = {}  # text key -> (shard, row)
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
        keys = [text_key(text) for text in items]
        missing = {
            key: text for key, text in zip(keys, items, strict=True) if key not in self._index
        }
        if missing:
            vectors = self.encoder.encode(list(missing.values()), batch_size, show_progress)
            expected = (len(missing), self.dim)
            if vectors.shape != expected:
                raise ValueError(
                    f"encoder {self.name} returned shape {vectors.shape}, expected {expected} "
                    f"(its width, or that of the vectors cached under its name in {self.folder}: "
                    "delete that folder if the name no longer identifies the vectors)"
                )
            self._write_shard(list(missing), np.asarray(vectors, dtype=np.float32))
        self.encoded_last_call = len(missing)
        logger.info(
            "%s: %d texts, %d from cache, %d encoded",
            self.name,
            len(items),
            len(items) - len(missing),
            len(missing),
        )
        return self._gather(keys)

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct ``texts`` the cache does not hold yet (shards other processes wrote included),
        in first-seen order: what another process (a Ray actor) may encode into it."""
        self._load_new_shards()
        return list({text: None for text in check_texts(texts) if text_key(text) not in self._index})

    def _gather(self, keys: list[str]) -> np.ndarray:
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        if not keys:
            return out
        located = np.array([self._index[key] for key in keys], dtype=np.int64)  # [n, 2]
        for shard in np.unique(located[:, 0]):
            take = located[:, 0] == shard
            out[take] = self._shards[shard][located[take, 1]]
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
            try:
                keys = np.load(keys_path)
                vectors = np.load(self.folder / f"{stem}{_VECTORS_SUFFIX}", mmap_mode="r")
            except (OSError, ValueError) as error:
                logger.warning(
                    "ignoring unreadable cache shard %s (%s); delete it", keys_path, error
                )
                continue
            fits = vectors.ndim == 2 and len(vectors) == len(keys) and self._width in (None, vectors.shape[1])
            if not fits or vectors.dtype != np.float32:
                logger.warning(
                    "ignoring cache shard %s: %s %s does not match %d keys of width %s; delete it",
                    keys_path,
                    vectors.shape,
                    vectors.dtype,
                    len(keys),
                    self._width or "any",
                )
                continue
            self._add_shard([key.decode("ascii") for key in keys.tolist()], vectors)

    def _write_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        name_file = folder / "name.txt"
        if not name_file.exists():
            name_file.write_text(self.name + "\n", encoding="utf-8")
        stem = f"shard-{uuid.uuid4().hex}"
        _save_atomic(folder / f"{stem}{_VECTORS_SUFFIX}", vectors)
        _save_atomic(folder / f"{stem}{_KEYS_SUFFIX}", np.array(keys, dtype="S64"))
        self._seen_shards.add(stem)
        self._add_shard(keys, vectors)

    def _add_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        shard = len(self._shards)
        self._shards.append(vectors)
        self._width = vectors.shape[1]
        for row, key in enumerate(keys):
            self._index.setdefault(key, (shard, row))
