"""Text encoders behind one small interface: ``encode(texts) -> float32 [n, d]``, ``dim``, ``name``.

The two model backends are imported on first use, so ``import encoders`` stays cheap for code
that only needs the interface or the cache.

Example:
    >>> from encoders import get_encoder
    >>> encoder = get_encoder(cache_dir=".cache/encoders")   # bundled all-MiniLM-L6-v2, offline
    >>> encoder.encode(["A quiet documentary about bees"]).shape
    (1, 384)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from encoders.base import DEFAULT_MODEL, TextEncoder
from encoders.cache import CachedEncoder
from encoders.factory import get_encoder

if TYPE_CHECKING:
    from encoders.hf import TransformersEncoder
    from encoders.sentence_transformer import SentenceTransformerEncoder

__all__ = [
    "DEFAULT_MODEL",
    "CachedEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TransformersEncoder",
    "get_encoder",
]


def __getattr__(name: str) -> Any:
    if name == "SentenceTransformerEncoder":
        from encoders.sentence_transformer import SentenceTransformerEncoder

        return SentenceTransformerEncoder
    if name == "TransformersEncoder":
        from encoders.hf import TransformersEncoder

        return TransformersEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
