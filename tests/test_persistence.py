"""Saved folders: an interrupted save leaves the previous model, and a damaged folder is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hybrid.recommender as recommender_module
from hybrid import HybridRecommender
from hybrid.persistence import MANIFEST_FILE


@pytest.fixture(scope="module")
def saved(tiny_model) -> tuple[HybridRecommender, Path]:
    return tiny_model


def copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_a_save_interrupted_at_any_file_leaves_the_previous_model(saved, tmp_path, monkeypatch) -> None:
    rec, folder = saved
    target = copy(folder, tmp_path)
    before = HybridRecommender.load(target, device="cpu").recommend(["u0", "u1"], k=5)
    writers = ["write_manifest", "save_file"]
    for name in writers:
        original = getattr(recommender_module, name)

        def broken(*args, _original=original, **kwargs):
            raise OSError("disk full (simulated)")

        monkeypatch.setattr(recommender_module, name, broken)
        with pytest.raises(OSError, match="simulated"):
            rec.save(target)
        monkeypatch.setattr(recommender_module, name, original)
        after = HybridRecommender.load(target, device="cpu").recommend(["u0", "u1"], k=5)
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.tmp")]  # no stray temporary folder


def test_a_model_write_that_fails_midway_leaves_the_previous_model(saved, tmp_path, monkeypatch) -> None:
    rec, folder = saved
    target = copy(folder, tmp_path)
    import hybrid.models.fusion_hybrid as fusion

    def broken(*args, **kwargs):
        raise OSError("crash while writing fusion.safetensors (simulated)")

    monkeypatch.setattr(fusion, "save_file", broken)
    with pytest.raises(OSError, match="simulated"):
        rec.save(target)
    HybridRecommender.load(target, device="cpu")  # still loads


def test_a_truncated_file_is_refused_naming_it(saved, tmp_path) -> None:
    _, folder = saved
    target = copy(folder, tmp_path)
    weights = target / "fusion.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"fusion\.safetensors has \d+ bytes, \d+ were saved"):
        HybridRecommender.load(target, device="cpu")


def test_a_changed_file_is_refused_naming_it(saved, tmp_path) -> None:
    _, folder = saved
    target = copy(folder, tmp_path)
    ids = target / "ids.json"
    ids.write_bytes(ids.read_bytes().replace(b'"u0"', b'"v0"'))  # same size, another user id
    with pytest.raises(ValueError, match=r"ids\.json does not match its checksum"):
        HybridRecommender.load(target, device="cpu")


def test_missing_ids_with_a_rewritten_manifest_are_refused_by_shape(saved, tmp_path) -> None:
    """Two item ids lost and the manifest rewritten to match: the shapes no longer agree."""
    from hybrid.persistence import write_manifest

    _, folder = saved
    target = copy(folder, tmp_path)
    ids = json.loads((target / "ids.json").read_text())
    ids["items"] = ids["items"][:-2]
    (target / "ids.json").write_text(json.dumps(ids))
    write_manifest(target, "HybridRecommender")
    with pytest.raises(ValueError, match=r"ids\.json names \d+ items, the model has \d+"):
        HybridRecommender.load(target, device="cpu")


def test_wrong_shape_inside_the_weights_is_refused(saved, tmp_path) -> None:
    from hybrid.persistence import write_manifest

    _, folder = saved
    target = copy(folder, tmp_path)
    arrays = load_file(str(target / "fusion.safetensors"))
    arrays["counts"] = arrays["counts"][:-1]
    save_file(arrays, str(target / "fusion.safetensors"))
    write_manifest(target, "HybridRecommender")
    with pytest.raises(ValueError, match=r"fusion\.safetensors: counts has shape"):
        HybridRecommender.load(target, device="cpu")


def test_missing_file_unknown_version_and_missing_folder(saved, tmp_path) -> None:
    _, folder = saved
    target = copy(folder, tmp_path)
    (target / "history.safetensors").unlink()
    with pytest.raises(ValueError, match=r"history\.safetensors is missing"):
        HybridRecommender.load(target, device="cpu")
    target = copy(folder, tmp_path / "v")
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 99 is not the 1 this version reads"):
        HybridRecommender.load(target, device="cpu")
    (target / MANIFEST_FILE).unlink()
    with pytest.raises(ValueError, match=r"manifest\.json is missing"):
        HybridRecommender.load(target, device="cpu")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        HybridRecommender.load(tmp_path / "nothing here", device="cpu")


@pytest.mark.parametrize("name", ["lightgcn", "mf", "hybrid_lightgcn"])
def test_embedding_models_save_atomically_and_refuse_damaged_folders(name, tmp_path) -> None:
    import pandas as pd
    import torch

    from hybrid.data.interactions import Interactions
    from hybrid.models import make_model
    from hybrid.models.base import FitData

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": rng.integers(0, 30, 300), "item": rng.integers(0, 20, 300)})
    data = Interactions.from_frame(frame)
    fit = FitData(train=data, item_text=[f"item number {i}" for i in range(data.n_items)], seed=0)
    params = {"dim": 8, "epochs": 2} | ({"content_hidden": 0} if name == "hybrid_lightgcn" else {})
    model = make_model(name, params).fit(fit)
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    users = np.arange(5)
    assert torch.allclose(loaded.score(users, data.matrix()[users]), model.score(users, data.matrix()[users]))
    weights = tmp_path / "m" / "embeddings.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"embeddings\.safetensors has 100 bytes"):
        type(model).load(tmp_path / "m")
    with pytest.raises(ValueError, match=r"holds a '(lightgcn|mf|hybrid_lightgcn)' model, not"):
        other = "mf" if name != "mf" else "lightgcn"
        model.save(tmp_path / "n")
        type(make_model(other, {})).load(tmp_path / "n")
