"""The hybrid's users as text: profile text of zero-history users and side information, encoded once.

:class:`UserTextState` is a part of :class:`hybrid.fusion.model.FusionHybrid` (its ``user_text_``)
that holds everything it reads: the encoder and device, the fitted users' profile text (fit only:
``use_user_text``) and its encoding. It reads nothing else of the model, so it is built from the
saved folder's contents alone (:meth:`UserTextState.from_saved`, called by
:mod:`hybrid.fusion.persist`), in whatever order the rest of the model is read.

On disk (the same files as before it was a part of its own, so no format change): the config's
``profiles`` entry names the array of the weights file that holds the encoded profiles,
``new_users.vectors`` where they are the new-user path's side vectors (one array for both), else
``user_profiles``; None without profile text. Older folders held the text itself (``user_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.text_features import EncoderConfig, encode_texts
from hybrid.fusion.signals import SignalSet
from hybrid.persistence import check_shape

SHARED = "new_users.vectors"  # the profiles are the new-user path's side vectors (saved by that path)
OWN = "user_profiles"  # the profiles' own array


def encode(texts: list[str], encoder: EncoderConfig, device: torch.device) -> torch.Tensor:
    """float32 [n, d] normalised text vectors through the fitted encoder."""
    vectors = torch.as_tensor(encode_texts(texts, encoder), device=device)
    return torch.nn.functional.normalize(vectors, dim=1)


def side_vectors(user_text: list[str] | None, encoder: EncoderConfig, device: torch.device) -> torch.Tensor | None:
    """float32 [n_users, d] encoded side information (zero rows where a user has none), or None."""
    if user_text is None or not any(t.strip() for t in user_text):
        return None
    present = [i for i, t in enumerate(user_text) if t.strip()]
    encoded = encode([user_text[i] for i in present], encoder, device)
    vectors = torch.zeros(len(user_text), encoded.shape[1], device=device)
    vectors[torch.as_tensor(present, device=device)] = encoded
    return vectors


class UserTextState:
    """The fitted users' profile text and its encoding.

    Attributes:
        encoder, device: how text is encoded (the hybrid's item encoder) and where the vectors live.
        texts: the fitted users' profile text (``use_user_text``), or None; None after loading a
            folder saved since the text stopped travelling: it holds the encoding, not the text.
        vectors: float32 [n_users, d] the encoded profiles (zero rows: none), or None until
            encoded (:meth:`profiles`) or without profile text.
    """

    def __init__(self, encoder: EncoderConfig, device: torch.device | str, texts: list[str] | None = None,
                 vectors: torch.Tensor | None = None) -> None:
        self.encoder, self.device = encoder, torch.device(device)
        self.texts, self.vectors = texts, vectors

    @property
    def active(self) -> bool:
        """Whether the text signals read the users' profile text at all."""
        return self.texts is not None or self.vectors is not None

    def profiles(self, known: torch.Tensor | None = None) -> torch.Tensor | None:
        """float32 [n_users, d] the fitted users' profile text encoded (zero rows: none), or None
        without it. ``known``: the same texts already encoded (the new-user path's side vectors),
        returned as they are where they have one row per text; otherwise the texts are encoded once."""
        if self.vectors is not None or self.texts is None:
            return self.vectors
        if known is not None and known.shape[0] == len(self.texts):
            return known
        self.vectors = side_vectors(self.texts, self.encoder, self.device)
        return self.vectors

    def text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: SignalSet,
                      encoded: torch.Tensor | None = None) -> torch.Tensor | None:
        """Profile vectors where a zero-history user has profile text; None when no row needs one
        (``builder``: the one whose text vectors average the rows' items; ``encoded``: the users'
        profile texts already encoded [n_users, d], default :meth:`profiles`)."""
        if not self.active:
            return None  # no use_user_text, or no profile text
        vectors = encoded if encoded is not None else self.profiles()
        if vectors is None:
            return None
        present = (vectors != 0).any(1).cpu().numpy()
        empty = [r for r in np.flatnonzero(np.diff(history.indptr) == 0) if 0 <= users[r] < len(present) and present[users[r]]]
        if not empty:
            return None
        profiles = builder.profile_vectors(history)
        rows = torch.as_tensor(empty, device=self.device)
        profiles[rows] = vectors[torch.as_tensor(users[empty], device=self.device)]
        return profiles

    # ------------------------------------------------------------------ persistence
    def saved(self, shared: torch.Tensor | None) -> tuple[str | None, dict[str, torch.Tensor]]:
        """(the config's ``profiles`` entry, the arrays to add to the weights file): nothing more
        where the profiles are ``shared`` (the new-user path's side vectors, saved by that path)."""
        profiles = self.profiles(shared)
        if profiles is None:
            return None, {}
        if profiles is shared:
            return SHARED, {}
        return OWN, {OWN: profiles}

    @classmethod
    def from_saved(cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], where: Path,
                   encoder: EncoderConfig, device: torch.device | str) -> UserTextState:
        """The state saved in a folder: ``meta`` its config, ``tensors`` its weights file ``where``
        (the item text vectors ``text`` give the width the profiles must have)."""
        name, vectors = meta.get("profiles"), None
        if name:
            if name not in tensors:
                raise ValueError(f"{where} lacks the array {name!r} that the folder's config names")
            vectors = tensors[name]
            check_shape(name, vectors.shape[1:], tuple(tensors["text"].shape[1:]), where)
        return cls(encoder, device, meta.get("user_text"), vectors)  # text: older folders
