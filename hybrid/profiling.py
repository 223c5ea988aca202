"""Seconds and peak memory per stage of a fit, so cost is measured where it arises.

A stage's ``peak_rss_mib`` is the process's peak resident memory when the stage ends (Linux
``ru_maxrss``): it only grows, so the stage where it jumps is the one that set the peak. GPU
stages add ``peak_cuda_mib``, the device's peak allocation during the stage.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)


class StageProfile:
    """``{stage: {"seconds", "peak_rss_mib"[, "peak_cuda_mib"]}}`` filled by :meth:`stage`; a
    stage entered twice adds its seconds."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.cuda = torch.device(device).type == "cuda"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            entry = self.stages.setdefault(name, {"seconds": 0.0})
            entry["seconds"] = round(entry["seconds"] + time.perf_counter() - start, 3)
            entry["peak_rss_mib"] = peak_rss_mib()
            if self.cuda:
                entry["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    def record(self) -> dict[str, dict[str, float]]:
        """The stages in the order they first ran, plus ``total`` seconds."""
        return {**self.stages, "total": {"seconds": round(sum(s["seconds"] for s in self.stages.values()), 3),
                                         "peak_rss_mib": peak_rss_mib()}}
