"""Data-parallel BPR training (hybrid.models.distributed) and the ``hybrid-train`` command.

Two CPU processes are launched with ``accelerate launch --multi_gpu`` (on a machine without CUDA
that starts torch.distributed.run over gloo; ``--cpu`` would start a single process without MPI).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hybrid.config import load_config
from hybrid.evaluation.train_command import TRAIN_FILE, main, train
from hybrid.graph.samplers import EpochSample
from hybrid.models import distributed
from hybrid.models.graph_models import LightGCNRecommender

PARAMS = {"dim": 16, "lr": 0.05, "batch_size": 64, "epochs": 12, "eval_every": 2, "patience": 3,
          "show_progress": False}


def write_experiment(folder: Path, params: dict | None = None) -> Path:
    """Three communities (40 users each over their own 40 items, 12 interactions a user drawn with
    a popularity skew; the last one tests, the one before validates): 1,200 training
    interactions, an even number, so two ranks draw the very epoch sample one process draws.
    Returns the config path."""
    rng = np.random.default_rng(0)
    skew = 1 / np.arange(1, 41) ** 0.8
    rows = [(f"u{g}_{u}", f"i{g}_{i}", t) for g in range(3) for u in range(40)
            for t, i in enumerate(rng.choice(40, 12, replace=False, p=skew / skew.sum()))]
    pd.DataFrame(rows, columns=["user", "item", "timestamp"]).to_csv(folder / "events.csv", index=False)
    config = {"name": "two_groups", "data": {"interactions": "events.csv"},
              "split": {"kind": "leave_last", "n": 1, "valid_per_user": 1}, "eval": {"seeds": 1},
              "models": ["lightgcn"], "params": {"lightgcn": params or PARAMS}, "device": "cpu"}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_two(config: Path, out: Path, tmp_path: Path) -> None:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("the accelerate command is not installed")
    command = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "hybrid.evaluation.train_command", "--config", str(config), "--model", "lightgcn",
               "--out", str(out), "--device", "cpu", "--log-level", "WARNING"]
    # A private HF_HOME: no user accelerate config can change the launch. The fault handler prints
    # the Python stacks should a rank abort.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"


def test_shards_of_an_epoch_are_strided_and_cover_it() -> None:
    n = distributed.epoch_triples(7, distributed.World(0, 2))
    assert n == 8
    sample = EpochSample(torch.arange(n), torch.arange(n) + 100, torch.arange(n).view(-1, 1), torch.zeros(n, dtype=torch.bool))
    shards = [distributed.take_shard(sample, distributed.World(r, 2)) for r in range(2)]
    assert shards[0].users.tolist() == [0, 2, 4, 6] and shards[1].users.tolist() == [1, 3, 5, 7]
    # step t of both ranks (batch 2) covers triples [4t, 4t + 4): one process's step with batch 4
    assert sorted(shards[0].users[:2].tolist() + shards[1].users[:2].tolist()) == [0, 1, 2, 3]
    assert shards[1].positives.tolist() == [101, 103, 105, 107]


def test_two_processes_agree_and_match_one_process(tmp_path: Path) -> None:
    config_path = write_experiment(tmp_path)
    launch_two(config_path, tmp_path / "two", tmp_path)
    two = json.loads((tmp_path / "two" / TRAIN_FILE).read_text())
    assert two["world_size"] == 2
    digests = two["rank_parameter_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # bit-identical parameters on both ranks

    one = train(load_config(config_path), "lightgcn", None, tmp_path / "one", "cpu")
    assert one["world_size"] == 1 and "rank_parameter_digests" not in one
    assert two["valid_recall@20"] == pytest.approx(one["valid_recall@20"], abs=0.05)

    # Two ranks with batch B are one process with batch 2B, up to summation order.
    doubled = load_config(config_path)
    doubled.params["lightgcn"] = {**PARAMS, "batch_size": 2 * PARAMS["batch_size"]}
    big = train(doubled, "lightgcn", None, tmp_path / "big", "cpu")
    assert two["epochs"] == big["epochs"] and two["chosen"] == big["chosen"]
    assert two["valid_recall@20"] == pytest.approx(big["valid_recall@20"], abs=1e-6)
    a, b = LightGCNRecommender.load(tmp_path / "two"), LightGCNRecommender.load(tmp_path / "big")
    torch.testing.assert_close(a.user_embeddings_, b.user_embeddings_, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.item_embeddings_, b.item_embeddings_, atol=1e-5, rtol=1e-5)


def test_train_command_writes_a_loadable_model_and_its_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_experiment(tmp_path, {**PARAMS, "epochs": 2})
    main(["--config", str(config), "--model", "lightgcn", "--out", str(tmp_path / "m"), "--log-level", "WARNING"])
    record = json.loads((tmp_path / "m" / TRAIN_FILE).read_text())
    for key in ("world_size", "valid_recall@20", "seconds", "epochs", "peak_rss_bytes", "command", "chosen"):
        assert key in record
    assert record["epochs"] == 2 and record["peak_rss_bytes"] > 0 and record["command"].startswith("hybrid-train ")
    model = LightGCNRecommender.load(tmp_path / "m")
    assert model.item_embeddings_.shape == (120, 16)
    assert "valid recall@20" in capsys.readouterr().out


@pytest.mark.parametrize(("model", "message"), [("popularity", "has no save format"), ("nope", "unknown model")])
def test_train_command_refuses_in_one_line(model: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = write_experiment(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--model", model, "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "m").exists()
