"""One process against N data-parallel processes of ``hybrid-train``: validation recall and throughput.

Runs ``hybrid-train`` once alone and once under ``accelerate launch --multi_gpu --num_processes N``
(N CPU processes over gloo on a machine without CUDA; ``--cpu`` would start one process unless MPI
is set up), each process with one torch thread so the comparison is processes, not threads, and
writes both ``train.json`` records with the ratios.

    python benchmarks/distributed_train.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, env=env, cwd=ROOT)
    record = json.loads((out / "train.json").read_text())
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ml100k_temporal")
    parser.add_argument("--model", default="lightgcn")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "distributed_train.json")
    args = parser.parse_args(argv)
    train = ["--config", args.config, "--model", args.model, "--log-level", "WARNING"]
    if args.data_root:
        train += ["--data-root", args.data_root]
    with tempfile.TemporaryDirectory() as tmp:
        one = run([str(BIN / "hybrid-train"), *train], Path(tmp) / "one")
        many = run([str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(args.processes),
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--no_python",
                    str(BIN / "hybrid-train"), *train], Path(tmp) / "many")
    result = {
        "command": "python benchmarks/distributed_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": args.config, "model": args.model, "one_process": one, "processes": many,
        "recall_ratio": round(many["valid_recall@20"] / one["valid_recall@20"], 4),
        "throughput_ratio": round(many["triples_per_second"] / one["triples_per_second"], 3),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("| processes | valid recall@20 | epochs | triples/s | seconds |\n|---|---|---|---|---|")
    for record in (one, many):
        print(f"| {record['world_size']} | {record['valid_recall@20']:.4f} | {record['epochs']} | "
              f"{record['triples_per_second']:,.0f} | {record['seconds']:.1f} |")
    print(f"recall ratio {result['recall_ratio']:.3f}, throughput ratio {result['throughput_ratio']:.2f}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
