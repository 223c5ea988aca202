"""One call to build the encoder a config names."""

from __future__ import annotations

import os
from typing import Literal

import torch

from encoders.base import TextEncoder
from encoders.cache import CachedEncoder

Backend = Literal["sentence-transformers", "transformers"]


def get_encoder(
    name_or_path: str | os.PathLike[str] | None = None,
    backend: Backend = "sentence-transformers",
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
) -> TextEncoder:
    """Build a text encoder, cached on disk when ``cache_dir`` is given.

    Args:
        name_or_path: Local folder or hub name; ``None`` is the bundled all-MiniLM-L6-v2.
        backend: ``"sentence-transformers"`` (the reference) or ``"transformers"`` (plain
            ``AutoModel`` with mean pooling; same vectors for mean-pooled models).
        cache_dir: Folder for :class:`~encoders.cache.CachedEncoder`; ``None`` caches nothing.
        device: Torch device; ``None`` picks ``cuda`` when available, else ``cpu``.

    Returns:
        An object with ``encode``, ``dim`` and ``name``.

    Raises:
        ValueError: ``backend`` is not one of the two above.
    """
    if backend == "sentence-transformers":
        from encoders.sentence_transformer import SentenceTransformerEncoder

        encoder: TextEncoder = SentenceTransformerEncoder(name_or_path, device=device)
    elif backend == "transformers":
        from encoders.hf import TransformersEncoder

        encoder = TransformersEncoder(name_or_path, device=device)
    else:
        raise ValueError(
            f"backend must be 'sentence-transformers' or 'transformers', got {backend!r}"
        )
    return encoder if cache_dir is None else CachedEncoder(encoder, cache_dir)
