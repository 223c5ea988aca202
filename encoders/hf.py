"""Text encoder on plain ``transformers``: attention-masked mean pooling, no sentence-transformers.

Why a second backend: it depends only on ``transformers``, one less moving part when
sentence-transformers changes its API (as it did in 5.x and 6.x), and every step of the
forward pass is visible here. For mean-pooled models such as all-MiniLM-L6-v2 it matches
:class:`~encoders.sentence_transformer.SentenceTransformerEncoder` to ~2e-7 (bit for bit when
the batches are the same); models pooled otherwise (CLS, last token) need the
sentence-transformers backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

from encoders.base import (
    check_batch_size,
    check_texts,
    quiet_loading,
    resolve_device,
    resolve_model,
)

logger = logging.getLogger(__name__)


class TransformersEncoder:
    """Encode texts with ``AutoModel`` and mean pooling over non-padding tokens.

    For tokens ``h_1..h_T`` with attention mask ``m``: ``v = Σ_t m_t h_t / max(Σ_t m_t, 1e-9)``,
    then ``v / ‖v‖₂`` when ``normalize`` (as sentence-transformers' ``Pooling`` + ``Normalize``).

    Args:
        model: Local folder or hub name; ``None`` loads the bundled all-MiniLM-L6-v2, offline.
        device: Torch device; ``None`` picks ``cuda`` when available, else ``cpu``, once.
        normalize: L2-normalise each vector.
        max_length: Tokens kept per text (longer texts are truncated). 256 is what
            sentence-transformers uses for all-MiniLM-L6-v2, so the two backends agree.

    Attributes:
        name: ``"transformers:<model id>:mean:max_length=<n>"``, plus ``":unnormalized"``.
        model_id: Hub name of the model, or its absolute path for a local folder.
        dim: Vector width (the model's hidden size).
        device: The device the model lives on.
        model: The ``AutoModel``, loaded on first use (the tokenizer and the model's config,
            read when the encoder is built, check the settings and give ``dim``), so a
            :class:`~encoders.cache.CachedEncoder` that holds every text never loads it.

    Raises:
        ValueError: ``max_length`` is not a positive int, or exceeds what the model can embed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        normalize: bool = True,
        max_length: int = 256,
    ) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        self.model_id, self._location = resolve_model(model)
        self.device = resolve_device(device)
        self.normalize = normalize
        self.max_length = max_length
        with quiet_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(self._location)
        config = AutoConfig.from_pretrained(self._location)
        limit = min(
            self._tokenizer.model_max_length,
            getattr(config, "max_position_embeddings", None) or self._tokenizer.model_max_length,
        )
        if max_length > limit:
            raise ValueError(
                f"max_length={max_length} exceeds the {limit} tokens {self.model_id} can embed"
            )
        self.dim: int = int(config.hidden_size)
        self.name = f"transformers:{self.model_id}:mean:max_length={max_length}" + (
            "" if normalize else ":unnormalized"
        )
        self._model: PreTrainedModel | None = None  # loaded on first use, see ``model``

    @property
    def model(self) -> PreTrainedModel:
        if self._model is None:
            with quiet_loading():
                self._model = AutoModel.from_pretrained(self._location).to(self.device).eval()
            logger.info("loaded %s on %s (dim=%d)", self.name, self.device, self.dim)
        return self._model

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` in length-sorted batches, rows returned in input order.

        Sorting by length (longest first, as sentence-transformers does) keeps padding, and so
        wasted compute, small within each batch.

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
        out = np.empty((len(items), self.dim), dtype=np.float32)
        order = np.argsort([-len(text) for text in items], kind="stable")
        starts = range(0, len(items), batch_size)
        for start in tqdm(starts, desc="Batches", disable=not show_progress):
            rows = order[start : start + batch_size]
            out[rows] = self._embed([items[i] for i in rows])
        return out

    @torch.inference_mode()
    def _embed(self, batch: list[str]) -> np.ndarray:
        """Pooled vectors for one batch: ``[len(batch), dim]`` float32 on the CPU."""
        features = self._tokenizer(
            batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        tokens = self.model(**features).last_hidden_state  # [b, T, dim]
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)  # [b, T, 1]
        pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = F.normalize(pooled, p=2, dim=1)
        return pooled.float().cpu().numpy()
