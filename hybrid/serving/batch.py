"""``hybrid-recommend --model DIR --users all|FILE --k 100 --out recs.parquet``: lists for many users.

Users are ranked in chunks; each finished chunk is written to ``OUT.parts/`` (atomically, by
rename), so memory stays at one chunk's lists and an interrupted run, started again with the same
arguments, skips the chunks it already has. When every chunk is there they are streamed into one
Parquet file with columns ``user``, ``rank`` (1 = best), ``item`` and ``score`` (and with
``--explain`` ``because``: e.g. "graph 0.62 (because you liked X, Y); text_knn 0.21 (like X)"), and
the parts are removed. A parts folder written for other arguments is refused, not mixed in.
``--ray [ADDRESS]`` ranks the same chunks with Ray actors (:mod:`hybrid.serving.ray_batch`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from hybrid.data.interactions import UnknownIdError, coerce_ids_like
from hybrid.evaluation.provenance import peak_rss_bytes
from hybrid.recommender import HybridRecommender
from hybrid.serving.chunks import write_chunk

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"


def read_users(source: str, model: HybridRecommender) -> pd.Index:
    """``all`` (every known user) or a file of ids: .txt (one per line), .csv or .parquet (a
    ``user`` column, else the first); ids typed like the model's."""
    if source == "all":
        return model.user_ids_
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--users: no file {path} (pass a file of user ids, or 'all')")
    if path.suffix == ".txt":
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        ids = frame["user" if "user" in frame.columns else frame.columns[0]].tolist()
    if not ids:
        raise ValueError(f"--users: {path} holds no user ids")
    return coerce_ids_like(pd.Index(ids), model.user_ids_)


def job_key(model_dir: Path, users: pd.Index, k: int, chunk_size: int) -> str:
    """What makes two runs the same job: the model's manifest, the users, k and the chunking."""
    digest = hashlib.sha256((model_dir / "manifest.json").read_bytes())
    digest.update("\x1f".join(map(str, users)).encode())
    digest.update(f"{k} {chunk_size}".encode())
    return digest.hexdigest()


def export(model_dir: str | Path, users_source: str, k: int, out: str | Path, chunk_size: int = 5000,
           device: str = "cpu", show_progress: bool | None = None, explain: bool = False,
           ray: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Write the top-``k`` list of every user to ``out`` (``explain``: with a ``because`` column);
    returns what it did (rows, chunks, seconds). ``ray``: rank the chunks with Ray actors
    (:mod:`hybrid.serving.ray_batch`; "local" starts ``workers`` local ones, else a cluster address)."""
    start = time.perf_counter()
    model_dir, out = Path(model_dir), Path(out)
    model = HybridRecommender.load(model_dir, device=device)
    users = read_users(users_source, model)
    unknown = users[~users.isin(model.user_ids_)]
    if len(unknown):
        raise UnknownIdError(f"--users: unknown user ids {list(unknown[:5])} ({len(unknown)} in all)")
    parts = out.with_name(out.name + ".parts")
    key = job_key(model_dir, users, k, chunk_size) + ("+explain" if explain else "")
    if parts.exists():
        job = json.loads((parts / JOB_FILE).read_text()) if (parts / JOB_FILE).exists() else {}
        if job.get("key") != key:
            raise ValueError(f"{parts} holds chunks of another job (other model, users, k or chunk size); "
                             "delete it to start again")
    else:
        parts.mkdir(parents=True)
        (parts / JOB_FILE).write_text(json.dumps({"key": key, "model": str(model_dir), "k": k}))
    chunks = range(0, len(users), chunk_size)
    todo = [(index, path) for index in chunks if not (path := parts / f"chunk_{index // chunk_size:06d}.parquet").exists()]
    done = len(chunks) - len(todo)
    actors = None
    if ray is not None:
        from hybrid.serving.ray_batch import rank_chunks  # Ray: an optional extra

        actors = rank_chunks(model_dir, users, todo, chunk_size, k, explain, device, ray, workers)
    else:
        for index, path in tqdm(todo, desc="recommend", unit="chunk",
                                disable=None if show_progress is None else not show_progress):
            write_chunk(model, users[index : index + chunk_size], k, explain, path)
    rows = 0
    temporary = out.with_name(out.name + ".tmp")
    writer = None
    for path in sorted(parts.glob("chunk_*.parquet")):
        table = pq.read_table(path)
        writer = writer or pq.ParquetWriter(temporary, table.schema)
        writer.write_table(table)
        rows += table.num_rows
    if writer is not None:
        writer.close()
        temporary.replace(out)
    shutil.rmtree(parts)
    return {"users": len(users), "rows": rows, "chunks": len(chunks), "resumed_chunks": done, "ray_actors": actors,
            "seconds": round(time.perf_counter() - start, 2), "peak_rss_bytes": peak_rss_bytes()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybrid-recommend", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a folder written by HybridRecommender.save")
    p.add_argument("--users", default="all", help="'all' or a .txt / .csv / .parquet file of user ids")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--out", required=True, help="the Parquet file to write")
    p.add_argument("--chunk-size", type=int, default=5000, help="users ranked (and kept in memory) at once")
    p.add_argument("--device", default="cpu")
    p.add_argument("--explain", action="store_true",
                   help="add a 'because' column: why each item is listed (its largest signals and the items behind them)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="rank the chunks with Ray actors: alone, local workers; with an address (or 'auto'), "
                        "that cluster's (needs pip install 'hybrid-coldstart[distributed]')")
    p.add_argument("--workers", type=int, default=None,
                   help="with --ray: actors, one CPU each (default: every CPU of this machine or the cluster)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.k < 1 or args.chunk_size < 1:
        sys.exit(f"hybrid-recommend: --k and --chunk-size must be positive, got {args.k} and {args.chunk_size}")
    try:
        summary = export(args.model, args.users, args.k, args.out, args.chunk_size, args.device, explain=args.explain,
                         ray=args.ray, workers=args.workers)
    except (OSError, ValueError) as error:
        sys.exit(f"hybrid-recommend: {error}")
    print(f"wrote {summary['rows']} rows for {summary['users']} users to {args.out} in {summary['seconds']} s "
          f"({summary['resumed_chunks']} of {summary['chunks']} chunks resumed), "
          f"peak memory {summary['peak_rss_bytes'] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
