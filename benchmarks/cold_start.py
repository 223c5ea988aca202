"""The cold-start comparison: the hybrid against its peers on every cold-item data set, one JSON.

For each config (default: :data:`DEFAULT_CONFIGS`) this runs :func:`hybrid.evaluation.evaluate.run_split`, the
code behind ``hybrid-eval``, with the models :data:`MODELS` and each config's own parameters for
them; seeds follow ``hybrid-eval``'s rule (``eval.seeds``; None: 3 seeds on data sets of fewer
than 5,000 users, else 1) unless ``--seeds`` overrides it. ``configs/default_3seeds.yaml``
(bundled Online Retail, temporal split) is run on its top-level split only, not its scenarios.

``lightfm`` is registered in this process only: :class:`vs_lightfm.LightFMRecommender` (WARP,
identity + item-text features, epochs chosen on the validation set), with its parameters from the
config's ``params.lightfm`` when it has one (:class:`LightFMParams`: features "tokens" by default).
LightFM is a ``bench`` extra (``pip install -e '.[bench]'``).

Writes ``--json`` (default benchmarks/results/cold_start.json; rewritten after every data set):
the command, date, machine, package versions and git commit, then per config name the data set,
split, test users, seeds and per model every group of run_split's results (means, ``_std`` keys
when there are several seeds; ``per_seed`` dropped). ``hybrid-eval``'s files go to
``--out/<config name>/``. Prints one Markdown table per data set and the targets line, both from
:mod:`scripts/render_results.py <render_results>`, which also puts them into README.md.

    python benchmarks/cold_start.py --data-root ../shared/data
    python scripts/render_results.py
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from hybrid.config import ExperimentConfig, from_dict, load_config
from hybrid.data.datasets import load_dataset
from hybrid.evaluation.provenance import dirty_files, head_commit, package_versions
from hybrid.evaluation.run import run_split
from hybrid.models.base import MODELS, Recommender, import_builtins, register

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "benchmarks", ROOT / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from render_results import dataset_section, is_replay  # noqa: E402
from replay_intervals import replay_intervals  # noqa: E402
from vs_lightfm import LightFMRecommender  # noqa: E402

import_builtins()  # every built-in model's module now: the run uses one version of their code

logger = logging.getLogger(__name__)

DEFAULT_CONFIGS = (
    "configs/amazon_magazine_replay.yaml",
    "configs/ml100k_replay.yaml",
    "configs/ml_latest_small_replay.yaml",
    "configs/online_retail_replay.yaml",
    "configs/ml100k_cold_items.yaml",
    "configs/ml_latest_small_cold_items.yaml",
    "configs/ml1m_cold_items.yaml",
    "configs/amazon_scientific_cold_items.yaml",
    "configs/lastfm_cold_items.yaml",
    "configs/default_3seeds.yaml",
    "configs/ml_latest_small_temporal.yaml",
    "configs/amazon_magazine_temporal.yaml",
)
MODELS_RUN = ["popularity", "trending", "content", "text_gcn", "lightgcn", "gf_cf", "bspm", "lightfm", "hybrid"]
# A random cold-item config (no time) also runs at these new-item shares (``split.cold_fraction``),
# as "<name>@<share>": the one list depends on how many new items a test holds, and a deployment
# does not choose that. The config's own share keeps the config's name.
SHARES = (0.05, 0.2, 0.4)
DEFAULT_JSON = "benchmarks/results/cold_start.json"
PACKAGES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "sentence-transformers", "transformers",
            "lightfm-next", "hybrid-coldstart")


@dataclass
class LightFMParams:
    """``params.lightfm``: the arguments of :class:`vs_lightfm.LightFMRecommender`."""

    features: Literal["tokens", "minilm"] = "tokens"
    epochs: int = 50
    no_components: int = 64
    learning_rate: float = 0.05
    alpha: float = 1e-6
    eval_every: int = 5
    patience: int = 3
    minilm_dims: int = 32
    num_threads: int = 2


def make_lightfm(params: dict[str, Any]) -> Recommender:
    """The ``lightfm`` factory: unknown keys, wrong types and out-of-range values are errors."""
    config = from_dict(LightFMParams, params, "lightfm")
    for name in ("epochs", "no_components", "eval_every", "patience", "minilm_dims", "num_threads"):
        if getattr(config, name) < 1:
            raise ValueError(f"lightfm.{name} must be >= 1, got {getattr(config, name)!r}")
    if not config.learning_rate > 0:
        raise ValueError(f"lightfm.learning_rate must be > 0, got {config.learning_rate!r}")
    if not config.alpha >= 0:
        raise ValueError(f"lightfm.alpha must be >= 0, got {config.alpha!r}")
    return LightFMRecommender(**dataclasses.asdict(config))


def register_lightfm() -> None:
    """Register ``lightfm`` (once) in this process's model registry."""
    if "lightfm" not in MODELS:
        register("lightfm")(make_lightfm)


def resolve_config_path(name: str) -> Path:
    """A config path as given, or ``configs/<name>.yaml`` of this repository."""
    for candidate in (Path(name), ROOT / name, ROOT / "configs" / name, ROOT / "configs" / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no config {name!r} (neither a file nor configs/{name}.yaml)")


def benchmark_config(path: Path, seeds: int | None) -> ExperimentConfig:
    """The config at ``path`` with :data:`MODELS_RUN`, no scenarios, and ``--seeds`` if given."""
    config = load_config(path)
    config.models = list(MODELS_RUN)
    config.scenarios = {}
    if seeds is not None:
        config.eval = dataclasses.replace(config.eval, seeds=seeds)
    return config


def with_shares(path: Path, config: ExperimentConfig) -> list[tuple[Path, ExperimentConfig]]:
    """``config``, and for a random cold-item split one copy per other share of :data:`SHARES`."""
    runs = [(path, config)]
    if config.split.kind == "cold_items" and config.split.at is None:
        for share in SHARES:
            if share != config.split.cold_fraction:
                split = dataclasses.replace(config.split, cold_fraction=share)
                runs.append((path, dataclasses.replace(config, name=f"{config.name}@{share:g}", split=split)))
    return runs


def finite(value: Any) -> Any:
    """``value`` with NaN / infinite floats replaced by None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dataset_entry(config_path: Path, config: ExperimentConfig, results: dict[str, Any],
                  fitted: dict[tuple[str, str, str], tuple[Recommender, float]], wall: float) -> dict[str, Any]:
    """What the JSON keeps of one run_split: everything but ``per_seed``, plus the LightFM epochs."""
    models = {name: {k: v for k, v in r.items() if k != "per_seed"} for name, r in results["models"].items()}
    epochs = [getattr(model, "epochs_", None) for (name, _, _), (model, _) in fitted.items() if name == "lightfm"]
    if "lightfm" in models and epochs:
        models["lightfm"]["epochs_chosen"] = epochs
    try:
        shown_path = str(config_path.resolve().relative_to(ROOT))
    except ValueError:
        shown_path = str(config_path)
    return {
        "config": shown_path,
        "dataset": results["dataset"],
        "split": results["split"],
        "cold_axis": results.get("cold_axis"),
        "k": results["k"],
        "device": results.get("device"),
        "n_test_users": results["n_test_users"],
        "catalogue": results.get("catalogue"),
        "seeds": results.get("seeds", [config.split.seed]),
        "splits": results.get("splits", [results["split"]]),
        "params": {name: config.params.get(name) or {} for name in config.models},
        "wall_seconds": round(wall, 1),
        "models": models,
        **({"steps": results["steps"]} if "steps" in results else {}),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def provenance(argv: list[str], configs: list[str]) -> dict[str, Any]:
    """Command, date, machine, package versions and git commit of this run."""
    versions = package_versions(PACKAGES)
    return {
        "command": shlex.join(["python", "benchmarks/cold_start.py", *argv]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        },
        "package versions": versions,
        "git_commit": head_commit(),
        "git_dirty": dirty_files(),
        "configs": configs,
        "datasets": {},
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(finite(document), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"),
                        help="folder holding the data sets (default: $HYBRID_DATA_ROOT)")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="config names or paths")
    parser.add_argument("--out", default="runs/cold_start", help="hybrid-eval's files go to OUT/<config name>/")
    parser.add_argument("--json", default=DEFAULT_JSON, help="the results file (rewritten after each data set)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="split seeds per data set (default: hybrid-eval's rule, eval.seeds or 3 under 5,000 users)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the data sets of an existing --json that this run does not redo")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be >= 1")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_lightfm()
    paths = [resolve_config_path(name) for name in args.configs]
    configs = [run for path in paths for run in with_shares(path, benchmark_config(path, args.seeds))]
    names = [config.name for _, config in configs]
    if len(set(names)) != len(names):
        raise SystemExit(f"two configs share a name: {names}")
    document = provenance(argv, names)
    out_json = Path(args.json)
    if args.merge and out_json.is_file():
        kept = {name: entry for name, entry in json.loads(out_json.read_text())["datasets"].items() if name not in names}
        document["datasets"].update(kept)
    for path, config in configs:
        start = time.perf_counter()
        bundle = load_dataset(config.data.name, args.data_root, config.data.path)
        fitted: dict[tuple[str, str, str], tuple[Recommender, float]] = {}
        results = run_split(config, bundle, Path(args.out) / config.name, fitted)
        entry = dataset_entry(path, config, results, fitted, time.perf_counter() - start)
        if is_replay(entry):  # how sure each comparison is, from the run's evidence files
            entry["intervals"] = replay_intervals(Path(args.out) / config.name, entry)
        # the code that wrote this entry: the commit the run started from (render_results.py compares it)
        entry["git_commit"], entry["git_dirty"] = document["git_commit"], document["git_dirty"]
        document["datasets"][config.name] = finite(entry)
        write_json(out_json, document)
        print("\n" + dataset_section(config.name, document["datasets"][config.name]), flush=True)
    print(f"wrote {out_json}; put it into README.md with: python scripts/render_results.py")


if __name__ == "__main__":
    main()
