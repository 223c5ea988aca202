"""Serving a fitted model: batch export of every ML-1M user, and a load test of hybrid-serve.

    python benchmarks/serving.py --data-root ../shared/data

1. Fits ``HybridRecommender`` on ML-1M (all ratings as interactions, titles + genres as text) and
   saves it (reused from ``--work`` when already there).
2. ``hybrid-recommend --users all --k 100``, killed (SIGKILL) once two chunks are written, then
   run again: the second run must resume those chunks; its time and peak memory are printed.
3. ``hybrid-serve`` on 127.0.0.1 (a subprocess) under 1, 8 and 64 concurrent connections from an
   asyncio client (httpx), ``--seconds`` each, random known users, k=20: p50 / p99 latency and
   requests per second; a fourth phase at 8 connections reloads the model (``POST /admin/reload``)
   every 2 s and counts failed requests. Client and server share this machine's cores, so the
   numbers are a floor for a server with cores of its own.
Writes ``benchmarks/results/serving.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.evaluation.provenance import peak_rss_bytes, provenance

OUT = Path(__file__).resolve().parent / "results" / "serving.json"
KEY = "benchmark-key"


def fitted_model(data_root: str, work: Path) -> tuple[Path, float | None]:
    """The ML-1M model folder, fitted now (returns its fit seconds) or found from an earlier run."""
    folder = work / "ml1m_model"
    if (folder / "manifest.json").exists():
        return folder, None
    from hybrid import HybridRecommender
    from hybrid.data.datasets import load_dataset

    bundle = load_dataset("ml-1m", data_root)
    start = time.perf_counter()
    rec = HybridRecommender(device="cpu").fit(bundle.interactions, bundle.item_text)
    seconds = time.perf_counter() - start
    rec.save(folder)
    return folder, seconds


def batch_export(folder: Path, work: Path, k: int, chunk_size: int) -> dict[str, Any]:
    """Kill an export after two chunks, rerun it, and report the resumed run."""
    out = work / "recs.parquet"
    parts = out.with_name(out.name + ".parts")
    out.unlink(missing_ok=True)
    shutil.rmtree(parts, ignore_errors=True)
    command = [sys.executable, "-m", "hybrid.serving.batch", "--model", str(folder), "--users", "all", "--k", str(k),
               "--out", str(out), "--chunk-size", str(chunk_size)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while len(list(parts.glob("chunk_*.parquet"))) < 2 and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = len(list(parts.glob("chunk_*.parquet")))
    start = time.perf_counter()
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    line = second.stdout.strip().splitlines()[-1]
    print(" ", line, flush=True)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(out).metadata.num_rows
    return {"command": " ".join(["hybrid-recommend", *command[3:]]), "chunks_kept_after_kill": kept,
            "rerun_wall_seconds": round(time.perf_counter() - start, 2), "rows": rows, "report": line}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def load_phase(base: str, users: list[Any], connections: int, seconds: float,
                     reload_every: float | None = None) -> dict[str, Any]:
    """``connections`` clients posting /recommend back to back for ``seconds``."""
    latencies: list[float] = []
    failures: list[str] = []
    reloads = 0
    stop = time.perf_counter() + seconds
    rng = np.random.default_rng(connections)
    limits = httpx.Limits(max_connections=connections + 1, max_keepalive_connections=connections + 1)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < stop:
                user = users[int(rng.integers(len(users)))]
                start = time.perf_counter()
                try:
                    response = await client.post("/recommend", json={"user": user, "k": 20})
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:100]}")
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                latencies.append(time.perf_counter() - start)

        async def reloader() -> None:
            nonlocal reloads
            while reload_every and time.perf_counter() < stop - reload_every:
                await asyncio.sleep(reload_every)
                response = await client.post("/admin/reload", headers={"X-API-Key": KEY})
                if response.status_code != 200:
                    failures.append(f"reload {response.status_code}")
                reloads += 1

        began = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(connections)], reloader())
        elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1e3
    return {"connections": connections, "seconds": round(elapsed, 1), "requests": len(latencies),
            "requests_per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "failed": len(failures), "reloads": reloads,
            "failures_sample": failures[:3]}


def load_test(folder: Path, seconds: float) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "hybrid.serving.serve", "--model", str(folder), "--port", str(port),
                               "--log-level", "warning"], env={**os.environ, "HYBRID_API_KEY": KEY})
    try:
        for _ in range(600):
            try:
                ready = httpx.get(f"{base}/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        ids = json.loads((folder / "ids.json").read_text())["users"]
        phases = []
        for connections, reload_every in ((1, None), (8, None), (64, None), (8, 2.0)):
            phase = asyncio.run(load_phase(base, ids, connections, seconds, reload_every))
            phases.append(phase)
            print(f"  {connections} connections{' + reloads' if reload_every else ''}: {phase['requests_per_second']} req/s, "
                  f"p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, failed {phase['failed']}", flush=True)
        healthy = httpx.get(f"{base}/health").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"host": "127.0.0.1", "phases": phases, "healthy_after": healthy}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--work", default="runs/serving_benchmark")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    folder, fit_seconds = fitted_model(args.data_root, work)
    results: dict[str, Any] = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                               "dataset": "ml-1m", "fit_seconds": fit_seconds and round(fit_seconds, 1),
                               "provenance": provenance(torch.device("cpu"))}
    print("batch export", flush=True)
    results["batch_export"] = batch_export(folder, work, args.k, args.chunk_size)
    print("load test", flush=True)
    results["load_test"] = load_test(folder, args.seconds)
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["peak_rss_bytes"] = peak_rss_bytes()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n| connections | req/s | p50 ms | p99 ms | failed | reloads |")
    print("|---|---|---|---|---|---|")
    for phase in results["load_test"]["phases"]:
        print(f"| {phase['connections']} | {phase['requests_per_second']} | {phase['p50_ms']} | {phase['p99_ms']} | "
              f"{phase['failed']} | {phase['reloads']} |")
    print(f"wrote {args.out} in {results['wall_seconds']} s")


if __name__ == "__main__":
    main()
