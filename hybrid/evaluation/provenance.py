"""What a result depends on besides its config: the git commit of the code, package versions, the machine.

The one place that asks git: ``hybrid-eval``'s results, the benchmarks' JSON and the results page
(``scripts/render_results.py``) all read the commit through these functions.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[2]  # the checkout this package runs from (when it is one)
DIRTY = "+dirty"  # the mark git_commit appends when the checkout had uncommitted changes


def git(*args: str) -> str | None:
    """``git ARGS`` run in the checkout: its stdout, or None where git fails or is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def head_commit() -> str | None:
    """The checkout's commit (40 hex digits); None outside git."""
    return (git("rev-parse", "HEAD") or "").strip() or None


def dirty_files() -> list[str] | None:
    """Tracked files with uncommitted changes, sorted; None outside git."""
    status = git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else sorted(line[3:] for line in status.splitlines())


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, with "+dirty" for uncommitted changes; None outside git."""
    commit = head_commit()
    if commit is None:
        return None
    return commit + (DIRTY if dirty_files() else "")


def commits_since(commit: str | None, path: str) -> int | None:
    """Commits that changed ``path`` (relative to the checkout) after ``commit`` ("+dirty" allowed);
    None for an unknown commit or no git."""
    if not commit:
        return None
    out = (git("rev-list", "--count", f"{commit.removesuffix(DIRTY)}..HEAD", "--", path) or "").strip()
    return int(out) if out.isdigit() else None


def is_dirty(commit: str | None) -> bool:
    """Whether ``commit`` (as :func:`git_commit` writes it) names a checkout with uncommitted changes."""
    return bool(commit) and str(commit).endswith(DIRTY)


def short_commit(commit: str | None) -> str:
    """``commit`` cut to 12 hex digits for display, its "+dirty" kept: a result from uncommitted code
    must not read as if the commit held that code; "unknown" for None."""
    if not commit:
        return "unknown"
    return str(commit).removesuffix(DIRTY)[:12] + (DIRTY if is_dirty(commit) else "")


def recorded_commit(result: dict[str, Any]) -> str:
    """The commit a result JSON records (in its ``provenance`` or at its top), as :func:`short_commit` shows it."""
    prov = result.get("provenance") or {}
    return short_commit(prov.get("git_commit") or result.get("git_commit"))


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    """Each installed package's version, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def provenance(device: torch.device) -> dict[str, Any]:
    """What a result depends on besides its config: package versions, git commit, threads, device."""
    import torch  # here, so that reading results (scripts/render_results.py) does not load torch

    versions = package_versions(("hybrid-coldstart", "torch", "numpy", "scipy", "pandas", "sentence-transformers",
                                 "transformers", "torch-geometric"))
    return {"package_versions": versions, "git_commit": git_commit(), "torch_threads": torch.get_num_threads(),
            "device": str(device)}


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes (Linux reports kilobytes, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
