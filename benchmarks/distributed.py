"""Ray on this machine: batch recommendation and text encoding with 1 and 2 workers, in one run.

The hybrid is fitted with its defaults on ``--data`` (ML-1M where ``--data-root`` holds it, else the
bundled data) and saved; then, each timed from start to finish (Ray actors loading the model or the
encoder included):

- **recommend**: every user's top ``--k`` with their reasons (``hybrid-recommend --explain``'s
  chunk files, ``--chunk-size`` users each) in one process (torch on every core), then by the Ray
  actors of ``--ray`` with 1 and 2 workers (one torch thread each); the Ray chunks must list the
  single process's items;
- **encode**: the item texts of ``--encode-data`` (every one that --data-root holds of ML-1M, Amazon
  Scientific and Last.fm, else the fitted data's) into an empty cache, in one process, then by 1
  and 2 Ray actors.

The Ray runs share one local Ray instance of 2 CPUs (started once, not timed). Each engine runs
``--repeats`` times, interleaved with the others, and its fastest run is kept (this machine's
timings vary by a fifth from run to run). ``speed-up`` is throughput over the 1-worker run's (the issue's target for recommendation: 2 workers ≥ 1.6×).
Writes ``--json`` (default benchmarks/results/distributed.json) and prints a table.

    python benchmarks/distributed.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from hybrid import HybridRecommender, load_dataset
from hybrid.data.ray_encode import encode_texts_on_ray
from hybrid.data.text_features import EncoderConfig, encode_texts, forget_encoders
from hybrid.evaluation.provenance import git_commit
from hybrid.parallel import import_ray
from hybrid.serving.chunks import write_chunk
from hybrid.serving.ray_batch import rank_chunks

ROOT = Path(__file__).resolve().parents[1]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def rows_of(task: str, unit: str, amount: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: seconds and throughput, with the speed-up over the 1-worker Ray run."""
    base = next(run for run in runs if run["engine"] == "ray" and run["workers"] == 1)
    return [{"task": task, "engine": run["engine"], "workers": run["workers"], "seconds": round(run["seconds"], 2),
             "all_seconds": run["all_seconds"],
             f"{unit}_per_second": round(amount / run["seconds"], 1),
             "speedup_vs_1_worker": round(base["seconds"] / run["seconds"], 2)} for run in runs]


ENGINES = (("single process", None), ("ray", 1), ("ray", 2))


def best_of(repeats: int, run: Callable[[str, int | None, int], float]) -> list[dict[str, Any]]:
    """Each engine's fastest of ``repeats`` runs (the engines interleaved), every time kept."""
    times: dict[tuple[str, int | None], list[float]] = {engine: [] for engine in ENGINES}
    for repeat in range(repeats):
        for engine, workers in ENGINES:
            times[engine, workers].append(run(engine, workers, repeat))
    return [{"engine": engine, "workers": workers, "seconds": min(times[engine, workers]),
             "all_seconds": [round(t, 2) for t in times[engine, workers]]} for engine, workers in ENGINES]


def recommend_runs(folder: Path, work: Path, k: int, chunk_size: int, repeats: int) -> tuple[list[dict[str, Any]], bool]:
    """Every user's explained top-k in chunk files, in one process and by 1 and 2 Ray actors;
    whether all list the same items."""
    model = HybridRecommender.load(folder)
    users = model.user_ids_
    starts = list(range(0, len(users), chunk_size))
    lists = []

    def run(engine: str, workers: int | None, repeat: int) -> float:
        parts = work / f"parts_{engine.replace(' ', '_')}_{workers}_{repeat}"
        parts.mkdir()
        todo = [(start, parts / f"chunk_{n:06d}.parquet") for n, start in enumerate(starts)]
        if engine == "ray":
            seconds, _ = timed(lambda: rank_chunks(folder, users, todo, chunk_size, k, True, "cpu", "local", workers))
        else:
            seconds, _ = timed(lambda: [write_chunk(model, users[start:start + chunk_size], k, True, path)
                                        for start, path in todo])
        lists.append(pd.concat([pd.read_parquet(path, columns=["user", "rank", "item"]) for _, path in todo],
                               ignore_index=True))
        return seconds

    runs = best_of(repeats, run)
    return runs, all(frame.equals(lists[0]) for frame in lists[1:])


def encode_runs(texts: list[str], work: Path, repeats: int) -> list[dict[str, Any]]:
    """Every text into an empty cache: one process, then 1 and 2 Ray actors."""
    def run(engine: str, workers: int | None, repeat: int) -> float:
        forget_encoders()
        config = EncoderConfig(cache_dir=str(work / f"cache_{engine.replace(' ', '_')}_{workers}_{repeat}"))
        return timed(lambda: encode_texts(texts, config) if engine != "ray" else
                     encode_texts_on_ray(texts, config, "local", workers))[0]

    return best_of(repeats, run)


def encode_texts_of(names: list[str], data_root: str | None) -> list[str]:
    """The item texts of every data set of ``names`` that ``data_root`` holds."""
    texts: list[str] = []
    for name in names:
        if data_root and (Path(data_root) / name).exists():
            item_text = load_dataset(name, data_root).item_text
            texts += [str(t) for t in (item_text.values() if isinstance(item_text, dict) else item_text)]
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--data", default=None, help="default: ml-1m where --data-root holds it, else the bundled data")
    parser.add_argument("--k", type=int, default=100)  # hybrid-recommend's default
    parser.add_argument("--encode-data", nargs="*", default=["ml-1m", "amazon_scientific", "lastfm"])
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=2, help="runs per engine, interleaved; the fastest is kept")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "distributed.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    name = args.data or ("ml-1m" if args.data_root and (Path(args.data_root) / "ml-1m").exists() else "online_retail")
    bundle = load_dataset(name, args.data_root)
    ray = import_ray()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rec = HybridRecommender().fit(bundle.interactions, bundle.item_text, user_text=bundle.user_text)
        rec.save(work / "model")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            recommend, same = recommend_runs(work / "model", work, args.k, args.chunk_size, args.repeats)
            texts = encode_texts_of(args.encode_data, args.data_root) or list(rec.model_.item_text_)
            encode = encode_runs(texts, work, args.repeats)
        finally:
            ray.shutdown()
    rows = rows_of("recommend", "users", len(rec.user_ids_), recommend) + rows_of("encode", "texts", len(texts), encode)
    document = {"command": "python benchmarks/distributed.py" + (f" --data-root {args.data_root}" if args.data_root else ""),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git_commit": git_commit(),
                "data": name, "users": len(rec.user_ids_), "items": len(rec.item_ids_), "k": args.k,
                "chunk_size": args.chunk_size, "explain": True, "repeats": args.repeats, "texts": len(texts),
                "encode_data": [n for n in args.encode_data if args.data_root and (Path(args.data_root) / n).exists()],
                "ray": ray.__version__, "cpus": 2,
                "ray_lists_equal_single_process": same, "rows": rows}
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print("| task | engine | workers | seconds | per second | speed-up vs 1 worker |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rate = r.get("users_per_second", r.get("texts_per_second"))
        print(f"| {r['task']} | {r['engine']} | {r['workers'] or '—'} | {r['seconds']:.2f} | {rate} | "
              f"{r['speedup_vs_1_worker']:.2f} |")
    print(f"Ray lists equal the single process's: {same}; wrote {args.json}")


if __name__ == "__main__":
    main()
