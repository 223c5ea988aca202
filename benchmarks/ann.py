"""Exact vs ANN top-20 by inner product: recall of the exact top-20 and time per query.

    python benchmarks/ann.py --data-root ../shared/data            # all three catalogues
    python benchmarks/ann.py --items 1000000 --skip-real           # a smaller synthetic run

Catalogues: ML-1M and Gowalla (the GF-CF model's ideal low-pass vectors, D^{1/2}V, and its users'
queries: the vectors ``gf_cf+ann`` indexes), and a synthetic catalogue of ``--items`` × ``--dims``
unit vectors in clusters of uneven size (``--items-per-cluster`` on average, Zipf-sized), at two
difficulties (``SPREADS``): "clustered", where a query's top-20 lies mostly in its own cluster, and
"diffuse", where noise dominates (towards uniform random vectors, on which no index beats a scan). The peer in the
same run is exact scoring: one matrix product with every item (torch, chunked) and ``topk``.
Time per query is measured at batch 1 (one request) and batch 64 (a batch export), on this machine's
threads. Writes ``benchmarks/results/ann.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.evaluation.provenance import peak_rss_bytes, provenance
from hybrid.retrieval.ann import AnnConfig, AnnIndex

K = 20
# Norm of an item's (and a query's) offset from its cluster centre, which has norm 1: "clustered",
# a query's top-20 lies mostly in its own cluster; "diffuse", noise dominates and it spans many.
SPREADS = {"clustered": 1.0, "diffuse": 2.0}
OUT = Path(__file__).resolve().parent / "results" / "ann.json"


def synthetic(n: int, d: int, clusters: int, spread: float, seed: int, chunk: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """(items float32 [n, d], cluster centres [clusters, d]): unit vectors around Zipf-sized clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.7
    items = np.empty((n, d), np.float32)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        block = centres[rng.choice(clusters, size, p=weights / weights.sum())]
        block += spread * rng.standard_normal((size, d)).astype(np.float32) / np.sqrt(d)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        items[start : start + size] = block
    return items, centres


def synthetic_queries(centres: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    d = centres.shape[1]
    queries = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def exact_top(items: torch.Tensor, queries: np.ndarray, k: int, chunk: int = 1 << 20) -> np.ndarray:
    """int64 [b, k]: the exact top-k by inner product, items scanned in chunks (bounded memory)."""
    q = torch.as_tensor(queries)
    best_values = torch.full((len(q), k), -torch.inf)
    best_items = torch.zeros((len(q), k), dtype=torch.int64)
    for start in range(0, items.shape[0], chunk):
        values, index = torch.topk(q @ items[start : start + chunk].T, min(k, len(items[start : start + chunk])), dim=1)
        merged_values = torch.cat([best_values, values], 1)
        merged_items = torch.cat([best_items, index + start], 1)
        best_values, order = torch.topk(merged_values, k, dim=1)
        best_items = merged_items.gather(1, order)
    return best_items.numpy()


def per_query_seconds(search, queries: np.ndarray, batch: int, budget_s: float = 20.0) -> float:
    """Mean seconds per query over batches of ``batch`` (at most ``budget_s`` of batches, at least one)."""
    spent, done = 0.0, 0
    for start in range(0, len(queries), batch):
        t = time.perf_counter()
        search(queries[start : start + batch])
        spent += time.perf_counter() - t
        done += len(queries[start : start + batch])
        if spent > budget_s:
            break
    return spent / done


def recall_of_exact(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(e.tolist())) / len(e) for f, e in zip(found, exact, strict=True)]))


def run_catalogue(name: str, items: np.ndarray, queries: np.ndarray, settings: list[dict[str, Any]],
                  queries_b1: int) -> dict[str, Any]:
    """Every index setting on one catalogue against exact scoring."""
    items_t = torch.as_tensor(items)
    truth = exact_top(items_t, queries, K)

    def exact(batch: np.ndarray) -> np.ndarray:
        return exact_top(items_t, batch, K)

    exact_b1 = per_query_seconds(exact, queries[:queries_b1], 1)
    exact_b64 = per_query_seconds(exact, queries, 64)
    rows, built = [], {}
    for setting in settings:
        # Search-time knobs (nprobe, ef_search) reuse the index built for the rest of the setting.
        key = json.dumps({k: v for k, v in setting.items() if k not in ("nprobe", "ef_search")}, sort_keys=True)
        if key not in built:
            built.clear()
            start = time.perf_counter()
            built[key] = (AnnIndex(AnnConfig(**setting)).build(items), time.perf_counter() - start)
        index, build = built[key]
        index.config = AnnConfig(**setting)
        _, found = index.search(queries, K)
        b1 = per_query_seconds(lambda batch, index=index: index.search(batch, K), queries[:queries_b1], 1)
        b64 = per_query_seconds(lambda batch, index=index: index.search(batch, K), queries, 64)
        rows.append({"index": setting, "build_seconds": round(build, 2), "recall_of_exact@20": round(recall_of_exact(found, truth), 4),
                     "ms_per_query_b1": round(1e3 * b1, 4), "ms_per_query_b64": round(1e3 * b64, 4),
                     "speedup_b1": round(exact_b1 / b1, 1), "speedup_b64": round(exact_b64 / b64, 1)})
        print(f"  {name} {setting}: recall {rows[-1]['recall_of_exact@20']}, x{rows[-1]['speedup_b1']} at b1, "
              f"x{rows[-1]['speedup_b64']} at b64", flush=True)
    built.clear()
    return {"items": int(items.shape[0]), "dims": int(items.shape[1]), "queries": len(queries),
            "exact_ms_per_query_b1": round(1e3 * exact_b1, 4), "exact_ms_per_query_b64": round(1e3 * exact_b64, 4),
            "settings": rows}


def gf_cf_vectors(dataset: str, data_root: str, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """GF-CF's ideal-filter item vectors and a seeded sample of its users' queries on a real data set."""
    from hybrid.data.datasets import load_dataset
    from hybrid.data.interactions import Interactions
    from hybrid.models import make_model
    from hybrid.models.base import FitData

    bundle = load_dataset(dataset, data_root)
    frame = bundle.interactions
    train = Interactions.build(frame)
    model = make_model("gf_cf").fit(FitData(train=train))
    users = np.random.default_rng(0).choice(train.n_users, min(n_queries, train.n_users), replace=False)
    queries = model.user_factors(users, train.matrix()[users]).numpy()
    return model.item_factors().numpy(), queries


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--items", type=int, default=10_000_000)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--queries", type=int, default=2048)
    p.add_argument("--items-per-cluster", type=int, default=1000)
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    start = time.perf_counter()
    results: dict[str, Any] = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                               "k": K, "provenance": provenance(torch.device("cpu")), "catalogues": {}}
    real = {"ml-1m": [{"kind": "flat"}, {"kind": "ivf", "nprobe": 8}, {"kind": "hnsw"}],
            "gowalla": [{"kind": "flat"}, {"kind": "ivf", "nprobe": 32}, {"kind": "ivf", "nprobe": 128}, {"kind": "hnsw"}]}
    if not args.skip_real:
        for dataset, settings in real.items():
            items, queries = gf_cf_vectors(dataset, args.data_root, args.queries)
            results["catalogues"][dataset] = run_catalogue(dataset, items, queries, settings, queries_b1=200)
    millions = f"{args.items // 1_000_000}M" if args.items >= 1_000_000 else str(args.items)
    # Cells about the size of the data's clusters (--items-per-cluster / 2 vectors each), found
    # through an HNSW graph over the centroids (a flat scan of 20k centroids would cost more than
    # the cells themselves).
    nlist = max(1, 2 * args.items // args.items_per_cluster)
    settings = [{"kind": "ivf", "nlist": nlist, "coarse": "hnsw", "nprobe": nprobe, "train_per_cell": 16}
                for nprobe in (32, 128, 512)]
    for difficulty, spread in SPREADS.items():
        items, centres = synthetic(args.items, args.dims, max(1, args.items // args.items_per_cluster), spread, seed=0)
        queries = synthetic_queries(centres, args.queries, spread, seed=0)
        entry = run_catalogue(f"synthetic-{millions} {difficulty}", items, queries, settings, queries_b1=50)
        results["catalogues"][f"synthetic-{millions} {difficulty}"] = {**entry, "spread": spread}
        del items
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["peak_rss_bytes"] = peak_rss_bytes()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n| catalogue | index | recall of exact top-{K} | ms/query b1 | b64 | speed-up b1 | b64 | build s |")
    print("|---|---|---|---|---|---|---|---|")
    for catalogue, entry in results["catalogues"].items():
        print(f"| {catalogue} exact | - | 1.0 | {entry['exact_ms_per_query_b1']} | {entry['exact_ms_per_query_b64']} | 1 | 1 | - |")
        for row in entry["settings"]:
            print(f"| {catalogue} | {row['index']} | {row['recall_of_exact@20']} | {row['ms_per_query_b1']} | "
                  f"{row['ms_per_query_b64']} | {row['speedup_b1']} | {row['speedup_b64']} | {row['build_seconds']} |")
    print(f"wrote {args.out} in {results['wall_seconds']} s, peak memory {results['peak_rss_bytes'] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
