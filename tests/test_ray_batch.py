"""``hybrid-recommend --ray``: the chunks ranked by Ray actors on a local 2-CPU instance give the
single process's lists (users, ranks, items, reasons; scores to float rounding), and a run
interrupted without Ray is finished with it."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from hybrid.serving.batch import export

pytest.importorskip("ray", reason="Ray is the optional 'distributed' extra (also in 'dev')")


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
    assert result.returncode != 0 and "--workers must be positive" in result.stderr
    assert "Traceback" not in result.stderr
