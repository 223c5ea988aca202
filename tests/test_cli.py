"""hybrid-eval's user errors: one line naming the problem, exit code 2, no traceback, no output folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hybrid.evaluation.evaluate import main, resolve_config


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code), capsys.readouterr().err


@pytest.mark.parametrize(("args", "named"), [
    (["--config", "default", "--models", "popularity,lightgnc"], "unknown model 'lightgnc'"),
    (["--config", "no_such_config"], "config 'no_such_config' not found"),
    (["--config", "{tmp}/bad_k.yaml"], "eval.k must be a list of positive integers, got [0]"),
    (["--config", "{tmp}/bad_param.yaml"], "gf_cf: "),
    (["--config", "{tmp}/bad_key.yaml"], "unknown"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, named, tmp_path, capsys) -> None:
    (tmp_path / "bad_k.yaml").write_text("data: {name: online_retail}\neval: {k: [0]}\nmodels: [popularity]\n")
    (tmp_path / "bad_param.yaml").write_text("models: [gf_cf]\nparams: {gf_cf: {factor: 3}}\n")
    (tmp_path / "bad_key.yaml").write_text("modles: [popularity]\n")
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(out), "--log-level", "ERROR"]
    code, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybrid-eval: error: ") and named in lines[0]
    assert "Traceback" not in err
    assert not out.exists()  # validated before anything was written


def test_a_missing_data_folder_is_one_line(tmp_path, capsys) -> None:
    config = tmp_path / "ml.yaml"
    config.write_text("data: {name: ml-100k}\nsplit: {kind: cold_items}\nmodels: [popularity]\n")
    code, err = run_cli(["--config", str(config), "--data-root", str(tmp_path / "nowhere"),
                         "--out", str(tmp_path / "out"), "--log-level", "ERROR"], capsys)
    assert code == 2 and "data folder" in err and "--data-root" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys) -> None:
    with pytest.raises(ValueError, match="lightgnc"):
        main(["--config", "default", "--models", "lightgnc", "--debug", "--log-level", "ERROR"])


def test_help_lists_models_data_sets_and_packaged_configs() -> None:
    text = subprocess.run([sys.executable, "-m", "hybrid.evaluation.evaluate", "--help"], capture_output=True, text=True,
                          check=True).stdout
    for name in ("gf_cf", "bspm", "hybrid", "lightgcn", "ml-1m", "lastfm", "default", "ml1m_cold_items"):
        assert name in text


def test_packaged_configs_by_name() -> None:
    assert resolve_config("default").name == "default.yaml"
    assert resolve_config("ml100k_cold_items.yaml").name == "ml100k_cold_items.yaml"
    assert Path(resolve_config("default")).is_file()


def test_own_files_run_every_model_on_a_cold_item_split(tmp_path, capsys) -> None:
    """A CSV pair made from ML-100K, columns named in the config, paths relative to it."""
    from conftest import data_folder

    folder = data_folder("ml-100k")
    import pandas as pd

    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "ts"])
    ratings[ratings["user_id"] <= 200].to_csv(tmp_path / "interactions.csv", index=False)
    movies = pd.read_csv(folder / "u.item", sep="|", encoding="latin-1", header=None, usecols=[0, 1],
                         names=["movie_id", "title"])
    movies.to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "mine.yaml").write_text(
        "data:\n  interactions: interactions.csv\n  columns: {user: user_id, item: movie_id, timestamp: ts, weight: null}\n"
        "  item_text: items.csv\n  item_id_column: movie_id\n  text_columns: [title]\n"
        "split: {kind: cold_items, cold_fraction: 0.2}\neval: {k: [20], seeds: 1}\nmodels: [popularity, content]\n"
    )
    out = tmp_path / "out"
    main(["--config", str(tmp_path / "mine.yaml"), "--out", str(out), "--log-level", "ERROR"])
    capsys.readouterr()
    results = __import__("json").loads((out / "results.json").read_text())
    assert results["dataset"] == "interactions" and set(results["models"]) == {"popularity", "content"}
    assert results["models"]["content"]["cold_only"]["recall@20"] > results["models"]["popularity"]["cold_only"]["recall@20"]
    code, err = run_cli(["--config", str(tmp_path / "mine.yaml"), "--models", "popularity,lightgnc",
                         "--out", str(tmp_path / "out2"), "--log-level", "ERROR"], capsys)
    assert code == 2 and "lightgnc" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out2").exists()


def test_own_files_errors_name_the_field(tmp_path, capsys) -> None:
    (tmp_path / "i.csv").write_text("u,i\n1,2\n")
    (tmp_path / "a.yaml").write_text("data: {interactions: missing.csv}\nmodels: [popularity]\n")
    (tmp_path / "b.yaml").write_text("data: {interactions: i.csv, columns: {usr: u}}\nmodels: [popularity]\n")
    (tmp_path / "c.yaml").write_text("data: {item_text: i.csv}\nmodels: [popularity]\n")
    for name, named in (("a", "data.interactions"), ("b", "data.columns: unknown key(s) ['usr']"),
                        ("c", "need data.interactions")):
        code, err = run_cli(["--config", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / "o"),
                             "--log-level", "ERROR"], capsys)
        assert code == 2 and named in err, err


def test_an_out_of_range_model_parameter_is_one_line_before_any_data_is_read(tmp_path, capsys) -> None:
    """random_negatives: 0 (which once cleared every positive of the gate, silently) is refused
    in one line naming the key, exit 2, quickly and before anything is read or written."""
    import time

    config = tmp_path / "bad.yaml"
    config.write_text("models: [popularity, hybrid]\nparams: {hybrid: {random_negatives: 0}}\n")
    out = tmp_path / "out"
    start = time.perf_counter()
    code, err = run_cli(["--config", str(config), "--out", str(out), "--log-level", "ERROR"], capsys)
    assert time.perf_counter() - start < 5
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "random_negatives" in lines[0] and "Traceback" not in err
    assert not out.exists()
