"""How the hybrid's fit grows with the data: seconds and peak memory per stage on synthetic catalogues with text.

Each point is a fresh process (so its peak memory is its own): a power-law graph with planted taste
communities (:func:`hybrid.data.synthetic.power_law_interactions`, users = interactions / 20),
each item given words of its community (six of its community's 24 words and two of the whole
vocabulary, so text and graph agree as in real catalogues), then ``HybridRecommender().fit`` with
the defaults and a warm encoder cache (as in ``fit_profile.py``): encoding is not what this
measures, and MiniLM on two CPU cores encodes about a hundred texts a second, so the cache (a
temporary one) is filled with bag-of-words vectors (a seeded random vector per word, summed,
stored under the default encoder's name). Then, in the same process, GF-CF's fit on the same
interactions (the peer ratio). Two sweeps: interactions at a fixed catalogue, and catalogue size
at fixed interactions (a point both sweeps share runs once); the fitted exponent b of
seconds ∝ x^b (least squares in log-log) for each, for the whole fit and for each stage. The
``projection`` block applies each stage's two exponents to its seconds at the largest
catalogue measured, out to 100M users × 10M items × 1B interactions (docs/scale.md renders it).

    python benchmarks/fit_scaling.py                  # 1M, 5M, 20M interactions; 50k, 200k, 1M items
    python benchmarks/fit_scaling.py --quick          # a grid this 2-core machine fits in under an hour

Writes ``--json`` (default benchmarks/results/fit_scaling.json) and prints a table.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRIDS = {  # (interactions sweep at items, items sweep at interactions)
    "full": (((1_000_000, 5_000_000, 20_000_000), 50_000), ((50_000, 200_000, 1_000_000), 5_000_000)),
    "quick": (((250_000, 500_000, 1_000_000), 20_000), ((20_000, 50_000, 200_000, 1_000_000), 1_000_000)),
}
COMMUNITIES, WORDS_PER_COMMUNITY, VOCABULARY = 64, 24, 5000


def item_texts(item_comm: np.ndarray, seed: int) -> list[str]:
    """Six words of each item's community and two of the whole vocabulary (see the module docstring)."""
    rng = np.random.default_rng(seed)
    own = rng.integers(0, WORDS_PER_COMMUNITY, (len(item_comm), 6))
    other = rng.integers(0, VOCABULARY, (len(item_comm), 2))
    return [" ".join([*(f"w{c}x{w}" for w in own[i]), *(f"v{w}" for w in other[i])]) for i, c in enumerate(item_comm)]


class BagOfWords:
    """A seeded random vector per word, summed: text vectors whose neighbours share words."""

    def __init__(self, name: str, dim: int, seed: int) -> None:
        self.name, self.dim, self.seed = name, dim, seed

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        words = sorted({w for t in texts for w in t.split()})
        table = np.random.default_rng(self.seed).normal(size=(len(words), self.dim)).astype(np.float32)
        index = {w: i for i, w in enumerate(words)}
        return np.stack([table[[index[w] for w in t.split()]].sum(0) for t in texts])


def worker(interactions: int, items: int, seed: int) -> dict[str, Any]:
    """One point (run in its own process by :func:`main`, with a temporary encoder cache)."""
    import pandas as pd

    from encoders.cache import CachedEncoder
    from hybrid import HybridRecommender
    from hybrid.data.synthetic import planted_communities, power_law_interactions
    from hybrid.data.text_features import EncoderConfig, build_encoder, default_cache_dir
    from hybrid.evaluation.provenance import peak_rss_bytes
    from hybrid.models.base import FitData, make_model

    users = max(interactions // 20, 100)
    data = power_law_interactions(users, items, interactions, seed=seed, communities=COMMUNITIES)
    _, item_comm = planted_communities(users, items, seed=seed, communities=COMMUNITIES)
    texts = item_texts(item_comm, seed)
    default = build_encoder(EncoderConfig())
    start = time.perf_counter()
    CachedEncoder(BagOfWords(default.name, default.dim, seed), default_cache_dir() / "encoders").encode(texts)
    encode_seconds = time.perf_counter() - start
    frame = data.to_frame()
    start = time.perf_counter()
    rec = HybridRecommender(device="cpu", seed=seed).fit(frame, pd.Series(texts, index=data.item_ids))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    make_model("gf_cf", {}).fit(FitData(train=data))
    peer_seconds = time.perf_counter() - start
    return {"interactions": len(data), "users": users, "items": items, "hybrid_fit_seconds": round(fit_seconds, 2),
            "gf_cf_fit_seconds": round(peer_seconds, 2), "ratio": round(fit_seconds / max(peer_seconds, 1e-9), 1),
            "cache_fill_seconds": round(encode_seconds, 1), "peak_rss_gib": round(peak_rss_bytes() / 2**30, 2),
            "text_dim": default.dim,
            "warm_model": rec.model_.warm_name_, "stages": rec.model_.chosen()["profile"]}


TARGET = {"users": 100_000_000, "items": 10_000_000, "interactions": 1_000_000_000}


def exponent(points: list[dict[str, Any]], axis: str, stage: str | None = None) -> float | None:
    """b of seconds ∝ axis^b, least squares in log-log, of the whole fit or of one ``stage``
    (None with fewer than two points; a stage under 10 ms anywhere has no measurable trend: 0)."""
    if len(points) < 2:
        return None
    seconds = [p["hybrid_fit_seconds"] if stage is None else p["stages"].get(stage, {}).get("seconds", 0.0)
               for p in points]
    if min(seconds) < 0.01:
        return 0.0
    x = np.log([p[axis] for p in points])
    return round(float(np.polyfit(x, np.log(seconds), 1)[0]), 3)


def projection(by_interactions: list[dict[str, Any]], by_items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each stage's seconds at the largest catalogue measured, scaled by its own exponents in
    interactions and items (each clipped to [0, 3]) out to :data:`TARGET`: a trend, not a promise."""
    if len(by_interactions) < 2 or len(by_items) < 2:
        return {}
    base = max(by_items, key=lambda p: p["items"])
    stages = {}
    for stage, measured in base["stages"].items():
        if stage == "total":
            continue
        b_x = min(max(exponent(by_interactions, "interactions", stage) or 0.0, 0.0), 3.0)
        b_n = min(max(exponent(by_items, "items", stage) or 0.0, 0.0), 3.0)
        scale = (TARGET["interactions"] / base["interactions"]) ** b_x * (TARGET["items"] / base["items"]) ** b_n
        stages[stage] = {"seconds_measured": measured["seconds"], "exponent_interactions": b_x,
                         "exponent_items": b_n, "seconds_projected": round(measured["seconds"] * scale, 1)}
    return {"target": TARGET, "from": {k: base[k] for k in ("interactions", "users", "items")}, "stages": stages,
            "hours_projected": round(sum(s["seconds_projected"] for s in stages.values()) / 3600, 1),
            "arrays_gib": arrays_at(TARGET, base.get("text_dim", 384))}


def arrays_at(size: dict[str, int], dim: int) -> dict[str, float]:
    """GiB of each array the default fit holds at ``size`` (arithmetic from the defaults, not a
    measurement): what decides which parts leave one machine."""
    from hybrid.fusion.config import FusionConfig
    from hybrid.fusion.halves import BSPM_MAX_ITEMS
    from hybrid.models.graph_filters import BSPMConfig, GFCFConfig

    config, items, edges = FusionConfig(), size["items"], size["interactions"]
    # Past column_items the gates read candidate columns (FusionConfig.columns_per_user; seven
    # signals at most); past BSPM_MAX_ITEMS auto's graph half is GF-CF.
    columns = items > config.column_items
    factors, half = (BSPMConfig().factors, "BSPM") if items <= BSPM_MAX_ITEMS else (GFCFConfig().factors, "GF-CF")
    gate_batch = ("one gate batch of signals (batch x candidate columns x 7, float32)", config.columns_per_user()) \
        if columns else ("one gate batch of signals (batch x items x 7, float32)", items)
    gib = {
        "text vectors (items x d, float32)": items * dim * 4,
        "text-neighbour graph (items x M, value + int64 column)": items * config.neighbours * 12,
        "interaction CSR, both orientations (value + int64 column)": 2 * edges * 12,
        f"ideal-filter factors (items x k of {half}, float32)": items * factors * 4,
        "side regression weights ((d + 1) x items, float32)": (dim + 1) * items * 4,
        gate_batch[0]: config.batch_size * gate_batch[1] * 7 * 4,
        "a dense items x items matrix (float32), which no stage holds": items * items * 4,
        "a dense users x items matrix (float32), which no stage holds": size["users"] * items * 4,
    }
    return {name: round(b / 2**30, 1) for name, b in gib.items()}


def run_point(interactions: int, items: int, seed: int, timeout: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", str(interactions), str(items), "--seed", str(seed)]
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "HYBRID_CACHE_DIR": cache})
    if done.returncode != 0:
        return {"interactions": interactions, "items": items, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one point may take")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fit_scaling.json")
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.seed)))
        return 0
    from hybrid.evaluation.provenance import git_commit

    (sweep_x, at_items), (sweep_items, at_x) = GRIDS["quick" if args.quick else "full"]
    result: dict[str, Any] = {"command": "python benchmarks/fit_scaling.py" + (" --quick" if args.quick else ""),
                              "git_commit": git_commit(), "by_interactions": [], "by_items": []}
    done: dict[tuple[int, int], dict[str, Any]] = {}
    for key, points in (("by_interactions", [(x, at_items) for x in sweep_x]),
                        ("by_items", [(at_x, n) for n in sweep_items])):
        for interactions, items in points:
            if (interactions, items) not in done:
                done[interactions, items] = run_point(interactions, items, args.seed, args.timeout)
            row = done[interactions, items]
            result[key].append(row)
            print(f"{interactions:>11,} interactions {items:>9,} items: "
                  + (f"fit {row['hybrid_fit_seconds']} s (GF-CF {row['gf_cf_fit_seconds']} s), peak {row['peak_rss_gib']} GiB"
                     if "error" not in row else f"failed: {row['error']}"), flush=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    ok = {key: [r for r in result[key] if "error" not in r] for key in ("by_interactions", "by_items")}
    result["exponent_interactions"] = exponent(ok["by_interactions"], "interactions")
    result["exponent_items"] = exponent(ok["by_items"], "items")
    result["projection"] = projection(ok["by_interactions"], ok["by_items"])
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"fit seconds ∝ interactions^{result['exponent_interactions']}, items^{result['exponent_items']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
