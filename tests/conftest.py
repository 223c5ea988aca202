"""Shared fixtures: no network, a private encoder cache, and the shared real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA_ROOT = Path(os.environ.get("HYBRID_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Encoder vectors go to a temporary folder, so tests neither read nor leave a user cache."""
    os.environ["HYBRID_CACHE_DIR"] = str(tmp_path_factory.mktemp("hybrid-cache"))


def data_folder(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    folder = DATA_ROOT / name
    if not folder.exists():
        pytest.skip(f"real data set {name!r} not found at {folder} (set HYBRID_DATA_ROOT)")
    return folder
