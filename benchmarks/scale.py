"""Full-graph against sampled LightGCN training on synthetic power-law graphs: memory and time.

For each size (edges; users = edges / 20, items = edges / 100, :func:`hybrid.data.synthetic.power_law_interactions`)
and each propagation (``full``: the normalised adjacency, ``sampled``: PinSage importance
neighbourhoods), a fresh process generates the graph, builds the propagation matrix, and trains
``--steps`` BPR steps of the real trainer (:func:`hybrid.models.train.train_epoch`) after one
warm-up step; it reports seconds per million training triples and its peak RSS (a process of its
own, so the peak is that configuration's). The JSON also holds a projection to 100M users ×
10M items × 1B edges, built from the measured per-edge and per-node figures, rendered with the
rest by ``python scripts/render_results.py`` into docs/results.md and docs/scale.md.

    python benchmarks/scale.py                       # 5M, 20M, 50M edges; writes benchmarks/results/scale.json
    python benchmarks/scale.py --edges 1e6 --steps 2 --json /tmp/scale.json   # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hybrid.evaluation.provenance import provenance  # noqa: E402

DIM, LAYERS, TOP_T, WALKS, WALK_LENGTH = 64, 3, 20, 10, 10
NEIGHBOURHOOD = "edges"  # lightgcn_sampled's default (hybrid.models.graph_models.LightGCNConfig)
TARGET = {"users": 100e6, "items": 10e6, "edges": 1e9}
GPU_BYTES = 141e9 * 0.9  # an H200's memory, 10% kept free


def worker(edges: int, mode: str, steps: int, batch_size: int) -> dict[str, Any]:
    """One configuration, measured in this process (see the module docstring)."""
    from hybrid.data.synthetic import power_law_interactions
    from hybrid.graph.adjacency import interaction_adjacency
    from hybrid.graph.sampled import frontier_sizes, importance_adjacency
    from hybrid.graph.samplers import NegativeSampler
    from hybrid.models.graph_models import LightGCN, SampledLightGCN
    from hybrid.models.train import TrainConfig, make_optimizer, train_epoch

    torch.manual_seed(0)
    start = time.perf_counter()
    train = power_law_interactions(edges // 20, edges // 100, edges, seed=0)
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    if mode == "full":
        adj = interaction_adjacency(train, "cpu")
        model = LightGCN(train.n_users, train.n_items, DIM, LAYERS, adj)
    else:
        adj = importance_adjacency(train, TOP_T, WALKS, WALK_LENGTH, seed=0, neighbourhood=NEIGHBOURHOOD)
        model = SampledLightGCN(train.n_users, train.n_items, DIM, LAYERS, adj)
    build_s = time.perf_counter() - start
    adj_bytes = adj.values().numel() * (adj.values().element_size() + adj.col_indices().element_size()) + \
        adj.crow_indices().numel() * adj.crow_indices().element_size()
    config = TrainConfig(dim=DIM, batch_size=batch_size, lr=1e-3, epochs=1, show_progress=False)
    sampler = NegativeSampler(train, "uniform", device="cpu", generator=torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model, config.lr, torch.device("cpu"))
    model.train()
    train_epoch(model, sampler, optimizer, 0, batch_size, config)  # warm-up step: allocations, Adam state
    start = time.perf_counter()
    train_epoch(model, sampler, optimizer, 1, steps * batch_size, config)
    step_s = (time.perf_counter() - start) / steps
    batch = sampler.sample_epoch(batch_size, 2)
    rows = torch.cat([batch.users, batch.positives + train.n_users, batch.candidates[:, 0] + train.n_users])
    fronts = frontier_sizes(adj, rows, LAYERS)
    return {
        "edges": len(train), "users": train.n_users, "items": train.n_items, "mode": mode,
        "generate_s": round(generate_s, 2), "build_s": round(build_s, 2), "adjacency_nnz": int(adj.values().numel()),
        "adjacency_bytes": int(adj_bytes), "step_s": round(step_s, 4),
        "s_per_million_triples": round(step_s / batch_size * 1e6, 2),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "steps": steps, "batch_size": batch_size, "dim": DIM, "layers": LAYERS, "frontier_nodes": fronts,
        **({"top_t": TOP_T, "walks": WALKS, "walk_length": WALK_LENGTH, "neighbourhood": NEIGHBOURHOOD}
           if mode == "sampled" else {}),
    }


def projection(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """100M × 10M × 1B from the largest measured run of each mode: the propagation matrix per edge
    (full) or per node (sampled) as measured, the sampled one no larger than the full one where
    its rows are cut edges (``neighbourhood: edges``); embeddings, gradients and Adam's two moments at 4
    float32 tables of d per node; the step time scaled by the work a step does: every edge for
    full, the batch's frontier for sampled (measured, and at the target bounded by both the nodes
    and the batch's rows times 1 + T + ... + T^L)."""
    out: dict[str, Any] = {"target": TARGET, "dim": DIM}
    nodes = TARGET["users"] + TARGET["items"]
    tables = 4 * nodes * DIM * 4  # weights, gradients, Adam's m and v (float32)
    for mode in ("full", "sampled"):
        mine = [r for r in runs if r["mode"] == mode]
        if not mine:
            continue
        big = max(mine, key=lambda r: r["edges"])
        measured_nodes = big["users"] + big["items"]
        per_unit = big["adjacency_bytes"] / (big["edges"] if mode == "full" else measured_nodes)
        adjacency = per_unit * (TARGET["edges"] if mode == "full" else nodes)
        if mode == "full":
            full_adjacency = adjacency
        elif big.get("neighbourhood") == "edges" and "full" in out:
            adjacency = min(adjacency, full_adjacency)  # edge rows cut: never more than Â
        if mode == "full":
            scale = TARGET["edges"] / big["edges"]
        else:
            rows = big["frontier_nodes"][0]
            reach = min(nodes, rows * sum(TOP_T**level for level in range(LAYERS + 1)))
            scale = reach / big["frontier_nodes"][-1]
        epoch_hours = big["s_per_million_triples"] * scale * TARGET["edges"] / 1e6 / 3600
        total = adjacency + tables
        out[mode] = {
            "from_edges": big["edges"], "adjacency_gb": round(adjacency / 1e9, 1), "tables_gb": round(tables / 1e9, 1),
            "total_gb": round(total / 1e9, 1), "h200s_to_hold": int(-(-total // GPU_BYTES)),
            "cpu_epoch_hours": round(epoch_hours, 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", default="5e6,2e7,5e7", help="comma-separated edge counts")
    parser.add_argument("--modes", default="full,sampled")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(float(e)) for e in args.edges.split(",")]
    modes = args.modes.split(",")
    if args.worker:
        print(json.dumps(worker(sizes[0], modes[0], args.steps, args.batch_size)))
        return 0
    started = time.perf_counter()
    runs = []
    for edges in sizes:
        for mode in modes:
            command = [sys.executable, __file__, "--worker", "--edges", str(edges), "--modes", mode,
                       "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                runs.append({"edges": edges, "mode": mode, "failed": done.stderr.strip().splitlines()[-1:]})
                print(f"{edges:>12,} {mode:>8}: failed: {runs[-1]['failed']}", flush=True)
                continue
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = runs[-1]
            print(f"{r['edges']:>12,} {mode:>8}: build {r['build_s']:7.1f} s  {r['s_per_million_triples']:8.1f} s/M triples  "
                  f"peak {r['peak_rss_bytes'] / 2**30:6.2f} GiB", flush=True)
    ok = [r for r in runs if "failed" not in r]
    for edges in sizes:
        pair = {r["mode"]: r for r in ok if abs(r["edges"] - edges) < edges * 0.01}
        if {"full", "sampled"} <= set(pair):
            pair["sampled"]["speedup_over_full"] = round(pair["full"]["step_s"] / pair["sampled"]["step_s"], 2)
            pair["sampled"]["memory_over_full"] = round(pair["sampled"]["peak_rss_bytes"] / pair["full"]["peak_rss_bytes"], 2)
    result = {"command": "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "wall_seconds": round(time.perf_counter() - started, 1), "runs": runs, "projection": projection(ok),
              "provenance": provenance(torch.device("cpu"))}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
