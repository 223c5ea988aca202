"""A counter-based random stream in torch int64 (splitmix64): draw n of stream k is a pure
function of (k, n), so the walks are repeatable on any device and in any batch order.
"""

from __future__ import annotations

import numpy as np
import torch

# splitmix64 constants as signed int64 (torch has no uint64 arithmetic; products wrap mod 2^64).
_GAMMA = 0x9E3779B97F4A7C15 - 2**64
_MIX1 = 0xBF58476D1CE4E5B9 - 2**64
_MIX2 = 0x94D049BB133111EB - 2**64


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: a bijection of 64-bit words that passes BigCrush in sequence."""
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def uniform_bits(key: int, counter: torch.Tensor) -> torch.Tensor:
    """int64 uniform on [0, 2^63): draw number ``counter`` of the splitmix64 stream ``key``."""
    return _shr(_mix(key + counter * _GAMMA), 1)


def stream_key(seed: int | torch.Generator) -> int:
    """The stream key of a seed: the seed's splitmix64 mix, or a draw from a generator."""
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed, device=seed.device).item())
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    word = int(seed) % 2**64  # as a 64-bit word, then signed for torch
    return int(_mix(torch.tensor([word - 2**64 if word >= 2**63 else word], dtype=torch.int64)).item())
