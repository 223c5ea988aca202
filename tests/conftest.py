"""Shared fixtures: no network, a private encoder cache, and the shared real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
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


def two_tastes(n_users: int = 40, seed: int = 0, tastes: tuple[tuple[str, list[str]], ...] | None = None,
               ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Interactions and item text of a tiny catalogue with two tastes (by default space films "s*"
    for even users, cooking shows "c*" for odd ones; ``tastes``: other (prefix, texts) pairs); the
    tenth item of each taste has text and no interactions."""
    from test_recommender import COOKING, SPACE

    (even, even_texts), (odd, odd_texts) = tastes or (("s", SPACE), ("c", COOKING))
    rng = np.random.default_rng(seed)
    text = {f"{even}{i}": t for i, t in enumerate(even_texts)} | {f"{odd}{i}": t for i, t in enumerate(odd_texts)}
    rows = [(f"u{u}", f"{even if u % 2 == 0 else odd}{i}", t)
            for u in range(n_users) for t, i in enumerate(rng.choice(9, 4, replace=False))]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"]), text


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    """A HybridRecommender fitted on :func:`two_tastes` and the folder it was saved to."""
    from hybrid import HybridRecommender

    rec = HybridRecommender({"neighbours": 5}, device="cpu").fit(*two_tastes())
    folder = tmp_path_factory.mktemp("models") / "model"
    rec.save(folder)
    return rec, folder
