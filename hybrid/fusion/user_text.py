"""The hybrid's users as text: profile text of zero-history users and side information, encoded once.

A mixin of :class:`hybrid.fusion.model.FusionHybrid` (which sets ``config``, ``device_``,
``text_``, ``builder_`` and ``new_users_``): what turns users' words into the profile vectors
the text signals read and the side vectors the new-user path reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from hybrid.data.text_features import encode_texts
from hybrid.fusion.signals import SignalSet

if TYPE_CHECKING:
    from hybrid.fusion.config import FusionConfig
    from hybrid.fusion.new_users import NewUserPath


class UserText:
    """Profile and side text of users, encoded through the fitted item encoder."""

    config: FusionConfig
    device_: torch.device
    text_: torch.Tensor
    builder_: SignalSet
    new_users_: NewUserPath

    def side_vectors(self, user_text: list[str] | None) -> torch.Tensor | None:
        """float32 [n_users, d] encoded side information (zero rows where a user has none), or None."""
        if user_text is None or not any(t.strip() for t in user_text):
            return None
        present = [i for i, t in enumerate(user_text) if t.strip()]
        vectors = torch.zeros(len(user_text), self.text_.shape[1], device=self.device_)
        vectors[torch.as_tensor(present, device=self.device_)] = self.text_vectors([user_text[i] for i in present])
        return vectors

    @property
    def user_text_(self) -> list[str] | None:
        """The fitted users' profile text (``use_user_text``), or None; None after :meth:`load`
        too: a saved model holds the encoded vectors (:meth:`user_profiles`), not the text."""
        return self.__dict__.get("_user_text")

    @user_text_.setter
    def user_text_(self, value: list[str] | None) -> None:
        self.__dict__["_user_text"], self.__dict__["_user_profiles"] = value, None

    def set_user_profiles(self, profiles: torch.Tensor) -> None:
        """The fitted users' encoded profile text [n_users, d] (a loaded model holds no text)."""
        self.__dict__["_user_profiles"] = profiles

    def user_profiles(self) -> torch.Tensor | None:
        """float32 [n_users, d] the fitted users' profile text encoded (zero rows: none), or None
        without it; encoded once (the new-user path's side vectors, when it has the same)."""
        if self.__dict__.get("_user_profiles") is None and self.user_text_ is not None:
            path = getattr(self, "new_users_", None)
            vectors = path.user_vectors if path is not None else None
            if vectors is None or vectors.shape[0] != len(self.user_text_):
                vectors = self.side_vectors(self.user_text_)
            self.__dict__["_user_profiles"] = vectors
        return self.__dict__.get("_user_profiles")

    def text_profiles(self, users: np.ndarray, history: sp.csr_matrix, builder: SignalSet | None = None,
                       encoded: torch.Tensor | None = None) -> torch.Tensor | None:
        """Profile vectors where a zero-history user has profile text; None when no row needs one
        (``builder``: the one whose text vectors average the rows' items, default the fitted one;
        ``encoded``: the users' profile texts already encoded [n_users, d], default :meth:`user_profiles`)."""
        if self.user_text_ is None and self.__dict__.get("_user_profiles") is None:
            return None  # no use_user_text, or no profile text
        vectors = encoded if encoded is not None else self.user_profiles()
        if vectors is None:
            return None
        present = (vectors != 0).any(1).cpu().numpy()
        empty = [r for r in np.flatnonzero(np.diff(history.indptr) == 0) if 0 <= users[r] < len(present) and present[users[r]]]
        if not empty:
            return None
        profiles = (builder or self.builder_).profile_vectors(history)
        rows = torch.as_tensor(empty, device=self.device_)
        profiles[rows] = vectors[torch.as_tensor(users[empty], device=self.device_)]
        return profiles

    def text_vectors(self, texts: list[str]) -> torch.Tensor:
        """float32 [n, d] normalised text vectors through the fitted encoder."""
        vectors = torch.as_tensor(encode_texts(texts, self.config.encoder), device=self.device_)
        return torch.nn.functional.normalize(vectors, dim=1)
