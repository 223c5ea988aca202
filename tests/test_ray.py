"""Ray (one local 2-CPU instance for the module): ``hybrid-recommend --ray`` gives the single
process's lists (users, ranks, items, reasons; scores to float rounding) and finishes a job
interrupted without Ray; the fit's text encoding fills the same cache the single process reads;
the text-neighbour search as Ray tasks gives the same graph, exact and through IVF."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.serving.batch import export

ray = pytest.importorskip("ray", reason="Ray is the optional 'distributed' extra (also in 'dev')")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance of 2 CPUs, used by every call below (they start none of their own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


class Interrupted(Exception):
    """Stands for a kill mid-export."""


def test_ray_actors_write_the_single_process_file_and_finish_an_interrupted_job(tiny_model, tmp_path,
                                                                                monkeypatch) -> None:
    folder = tiny_model[1]
    single = tmp_path / "single.parquet"
    export(folder, "all", 5, single, chunk_size=7, show_progress=False, explain=True)
    expected = pd.read_parquet(single)

    import hybrid.serving.batch as batch

    calls = []
    original = batch.HybridRecommender.recommend

    def interrupted(self, users, **kwargs):
        calls.append(len(users))
        if len(calls) == 3:
            raise Interrupted
        return original(self, users, **kwargs)

    out = tmp_path / "ray.parquet"
    monkeypatch.setattr(batch.HybridRecommender, "recommend", interrupted)
    with pytest.raises(Interrupted):
        export(folder, "all", 5, out, chunk_size=7, show_progress=False, explain=True)
    monkeypatch.setattr(batch.HybridRecommender, "recommend", original)
    summary = export(folder, "all", 5, out, chunk_size=7, show_progress=False, explain=True, ray="local", workers=2)
    assert summary["resumed_chunks"] == 2 and summary["ray_actors"] == 2 and summary["chunks"] == 6
    got = pd.read_parquet(out)  # the same lists; scores to float rounding (an actor runs torch on 1 thread)
    pd.testing.assert_frame_equal(got.drop(columns="score"), expected.drop(columns="score"))
    pd.testing.assert_series_equal(got["score"], expected["score"], check_exact=False, rtol=1e-5, atol=1e-5)
    assert len(expected) == 40 * 5 and expected["because"].str.len().gt(0).all()


def test_a_bad_worker_count_is_one_line(tiny_model, tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "hybrid.serving.batch", "--model", str(tiny_model[1]), "--out",
                             str(tmp_path / "r.parquet"), "--ray", "--workers", "0"], capture_output=True, text=True)
    assert result.returncode != 0 and "workers must be positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_text_neighbour_search_as_ray_tasks_is_the_same_graph(monkeypatch) -> None:
    import hybrid.fusion.neighbours as neighbours

    vectors = torch.nn.functional.normalize(torch.randn(600, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    for exact_max in (50_000, 100):  # exact products, then the IVF index (built here, searched by the tasks)
        monkeypatch.setattr(neighbours, "EXACT_KNN_MAX", exact_max)
        here = neighbours.text_neighbours(vectors, 8)
        there = neighbours.text_neighbours(vectors, 8, ray="local", workers=2)
        assert here.nnz > 0 and (here != there).nnz == 0


def test_ray_actors_encode_into_the_cache_the_fit_reads(tmp_path) -> None:
    from hybrid.data.ray_encode import encode_texts_on_ray
    from hybrid.data.text_features import (
        EncoderConfig,
        build_encoder,
        encode_texts,
        forget_encoders,
    )

    texts = [f"a {word} record of jazz number {i}" for i, word in enumerate(["blue", "cool", "modal", "free"] * 5)]
    texts += ["", texts[0]]  # an empty text (a zero row) and a repeat (encoded once)
    alone = encode_texts(texts, EncoderConfig(cache_dir=str(tmp_path / "alone")))
    config = EncoderConfig(cache_dir=str(tmp_path / "ray"))
    forget_encoders()
    vectors = encode_texts_on_ray(texts, config, "local", workers=2)
    assert build_encoder(config).encoded_last_call == 0  # every vector read from shards the actors wrote
    assert len(list((tmp_path / "ray").rglob("*.keys.npy"))) == 7  # 20 distinct texts in shards of 3
    np.testing.assert_allclose(vectors, alone, atol=1e-5)
    assert not vectors[20].any()


def test_a_fit_with_ray_ranks_as_one_without(tiny_model) -> None:
    from conftest import two_tastes

    from hybrid import HybridRecommender

    rec = tiny_model[0]
    on_ray = HybridRecommender({"neighbours": 5, "ray": "local", "ray_workers": 2}, device="cpu").fit(*two_tastes())
    users = list(rec.user_ids_[:8])
    here, there = rec.model_.neighbours_, on_ray.model_.neighbours_  # the text vectors to float rounding
    assert (here.indices == there.indices).all() and np.allclose(here.data, there.data, atol=1e-5)
    assert (on_ray.recommend(users, k=5)[0] == rec.recommend(users, k=5)[0]).all()
