"""Choose the torch device once, from a config string."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> CUDA when torch sees one, else CPU; "cuda" without CUDA is an error, not a fallback."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA device; use 'cpu'")
    return torch.device(name)
