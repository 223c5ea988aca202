"""Saved folders: an interrupted save leaves the previous model, and a damaged folder is refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file, save_file

import hybrid.recommender as recommender_module
from hybrid import HybridRecommender
from hybrid.data.interactions import Columns, Interactions
from hybrid.models import make_model
from hybrid.models.base import FitData
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
    import hybrid.fusion.persist as fusion

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


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
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
    params = {"dim": 8, "epochs": 2}
    model = make_model(name, params).fit(fit)
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    users = np.arange(5)
    assert torch.allclose(loaded.score(users, data.matrix()[users]), model.score(users, data.matrix()[users]))
    weights = tmp_path / "m" / "embeddings.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"embeddings\.safetensors has 100 bytes"):
        type(model).load(tmp_path / "m")
    with pytest.raises(ValueError, match=r"holds a '(lightgcn|mf)' model, not"):
        other = "mf" if name != "mf" else "lightgcn"
        model.save(tmp_path / "n")
        type(make_model(other, {})).load(tmp_path / "n")


SMALL = {"neighbours": 5, "candidates": 20, "random_negatives": 20}  # a 20-item catalogue needs few negatives


def profiled_tastes(n_users: int = 48, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """Interactions with custom column names, item text and users' side text: space fans (even
    users) and cooking fans (odd ones), 8 items each, enough for the new-user gates and the side
    regression to be fitted."""
    from test_recommender import COOKING, SPACE

    rng = np.random.default_rng(seed)
    text = {f"s{i}": t for i, t in enumerate(SPACE)} | {f"c{i}": t for i, t in enumerate(COOKING)}
    rows = [(f"u{u}", f"{'s' if u % 2 == 0 else 'c'}{i}", 10 * u + t)
            for u in range(n_users) for t, i in enumerate(rng.choice(9, 8, replace=False))]
    profiles = {f"u{u}": "A fan of spaceships and galaxies." if u % 2 == 0 else "A keen home cook of pasta."
                for u in range(n_users)}
    return pd.DataFrame(rows, columns=["customer", "product", "when"]), text, profiles


def test_a_model_with_user_text_and_own_columns_survives_partial_fit_add_items_save_load(tmp_path) -> None:
    """partial_fit (new users), add_items, save, load, partial_fit again: the loaded model
    recommends as the saved one, and both take the same update to the same lists."""
    frame, text, profiles = profiled_tastes()
    columns = Columns(user="customer", item="product", timestamp="when", weight=None)
    rec = HybridRecommender(SMALL, columns=columns, device="cpu").fit(frame, text, user_text=profiles)
    assert rec.model_.new_users_.side is not None  # the user-side path is fitted and travels
    rec.partial_fit(pd.DataFrame({"customer": ["n1", "n1", "n2"], "product": ["s1", "s2", "c3"],
                                  "when": [1000, 1001, 1002]}))
    rec.add_items({"s_new": "A crewed mission to Mars and its rocket launch", "c_new": "Slow-cooked stews"})
    users = ["u0", "u1", "n1", "n2"]
    ids, scores = rec.recommend(users, k=6)
    side_ids, _ = rec.recommend_for_user(profile="A fan of spaceships.", items=["s0"], k=6)
    rec.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m", device="cpu")
    loaded_ids, loaded_scores = loaded.recommend(users, k=6)
    assert (loaded_ids == ids).all() and np.allclose(loaded_scores, scores, rtol=1e-5, atol=1e-6)
    assert (loaded.recommend_for_user(profile="A fan of spaceships.", items=["s0"], k=6)[0] == side_ids).all()
    more = pd.DataFrame({"customer": ["n3", "u0"], "product": ["s_new", "c_new"], "when": [2000, 2001]})
    rec.partial_fit(more)
    loaded.partial_fit(more)  # the custom column names travelled with the model
    users.append("n3")
    ids, scores = rec.recommend(users, k=6)
    loaded_ids, loaded_scores = loaded.recommend(users, k=6)
    assert (loaded_ids == ids).all() and np.allclose(loaded_scores, scores, rtol=1e-5, atol=1e-6)
    rec.save(tmp_path / "again")  # and the twice-updated model saves and loads too
    assert (HybridRecommender.load(tmp_path / "again", device="cpu").recommend(users, k=6)[0] == ids).all()


def test_a_copy_updated_by_partial_fit_leaves_the_original_as_it_was() -> None:
    """copy() then partial_fit on the copy (what a server does): the original's new-user path,
    user counts and lists are untouched."""
    frame, text, profiles = profiled_tastes()
    columns = Columns(user="customer", item="product", timestamp="when", weight=None)
    rec = HybridRecommender(SMALL, columns=columns, device="cpu").fit(frame, text, user_text=profiles)
    counts = rec.model_.new_users_.user_counts.copy()
    ids, scores = rec.recommend(["u0", "u1"], k=6)
    clone = rec.copy()
    clone.partial_fit(pd.DataFrame({"customer": ["n1", "u0"], "product": ["s1", "c2"], "when": [1000, 1001]}))
    assert len(clone.model_.new_users_.user_counts) == len(counts) + 1
    assert np.array_equal(rec.model_.new_users_.user_counts, counts)
    again, again_scores = rec.recommend(["u0", "u1"], k=6)
    assert (again == ids).all() and np.allclose(again_scores, scores)


def test_a_saved_model_holds_users_vectors_not_their_side_text(tmp_path) -> None:
    """config.json (and every other file) of a model fitted with user_text holds no profile text;
    a zero-history user with a profile is still scored from it after load."""
    frame, text, profiles = profiled_tastes()
    frame = frame.rename(columns={"customer": "user", "product": "item", "when": "timestamp"})
    users = pd.Index([*sorted(frame["user"].unique()), "newbie"])
    items = pd.Index(list(text))
    train = Interactions.from_frame(frame, user_ids=users, item_ids=items)
    side = [profiles.get(u, "") for u in users[:-1]] + ["I love starships, alien worlds and galactic wars"]
    for new_users in (True, False):
        model = make_model("hybrid", {**SMALL, "new_users": new_users}).fit(
            FitData(train=train, item_text=[text[i] for i in items], user_text=side, seed=0))
        newbie, empty = np.array([len(users) - 1]), sp.csr_matrix((1, len(items)), dtype=np.float32)
        scores = model.score(newbie, empty)
        folder = tmp_path / f"new_users_{new_users}"
        model.save(folder)
        for file in folder.rglob("*"):
            if file.is_file():
                content = file.read_bytes()
                assert b"starships" not in content and b"home cook" not in content, file
        loaded = type(model).load(folder)
        assert torch.allclose(loaded.score(newbie, empty), scores, rtol=1e-5, atol=1e-6)
