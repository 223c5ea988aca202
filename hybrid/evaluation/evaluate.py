"""``hybrid-eval``: fit every model of a config on one split, rank, score, and write the evidence.

Writes to ``--out``: results.json, results.md, rankings_<model>.csv (user, rank, item, score),
test.csv (user, item), known_items.csv (user, item: what was masked), items.csv (item,
train_count, cold), users.csv (user, cold), recall_by_bucket.png, and the resolved config.
Splits with cold items add rankings_<model>.cold_only.csv and rankings_<model>.warm_only.csv (the
ALDI/GAR protocols: new items ranked among new items only, warm among warm). Every metric can be
recomputed from those files.

With ``eval.seeds`` > 1 (by default 3 on data sets of fewer than 5,000 users) the split is made,
and every model fitted and scored, once per seed: each seed's files go to ``seed_<s>/``, the first
seed's CSV files are also copied to ``--out``, and results.json holds the mean over seeds of every
metric, its sample standard deviation (ddof=1) as ``<metric>_std``, and ``per_seed``.

This module is the command line; the work is in :mod:`.prepare` (a split made into matrices),
:mod:`.run` (fit, rank, average over seeds and scenarios), :mod:`.scoring` (metrics of rankings),
:mod:`.evidence` (the files) and :mod:`.provenance`. The names callers use are re-exported here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from hybrid.config import load_config
from hybrid.evaluation.prepare import Prepared, fingerprint, load_bundle, prepare
from hybrid.evaluation.provenance import git_commit, peak_rss_bytes, provenance
from hybrid.evaluation.report import markdown_report
from hybrid.evaluation.run import (
    check_experiment,
    fitted_model,
    progress,
    resolve_seeds,
    run,
    run_split,
)
from hybrid.evaluation.scoring import evaluate_rankings

__all__ = ["Prepared", "check_experiment", "evaluate_rankings", "fingerprint", "fitted_model", "git_commit",
           "load_bundle", "main", "peak_rss_bytes", "prepare", "provenance", "resolve_config", "resolve_seeds",
           "run", "run_split"]



def main(argv: list[str] | None = None) -> None:
    from hybrid.data.datasets import DATASET_NAMES
    from hybrid.models.base import model_names

    parser = argparse.ArgumentParser(
        prog="hybrid-eval", description=__doc__.splitlines()[0],
        epilog=f"models: {', '.join(model_names())}. data sets: {', '.join(DATASET_NAMES)}. "
               f"packaged configs (--config NAME): {', '.join(packaged_configs())}.",
    )
    parser.add_argument("--config", required=True, help="YAML experiment config: a path, or a packaged config's name")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"),
                        help="folder holding the data sets (default: $HYBRID_DATA_ROOT)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--models", default=None, help="comma-separated model names, overriding the config")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the INFO detail (what each fit chose)")
    parser.add_argument("--log-level", default=None, help="log level (default WARNING, or INFO with -v)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error")
    parser.add_argument("--json", default=None, help="also write results.json here, with the command, wall "
                        "time and peak memory (e.g. benchmarks/results/eval_NAME.json for the README)")
    args = parser.parse_args(argv)
    level = (args.log_level or ("INFO" if args.verbose else "WARNING")).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    show_progress(level)
    try:
        path = resolve_config(args.config)
        config = load_config(path)
        out = Path(args.out or Path("runs") / path.stem)
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        start = time.perf_counter()
        results = run(config, args.data_root, out, args.device, models)
    except (ValueError, FileNotFoundError, PermissionError, KeyError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        parser.exit(2, f"hybrid-eval: error: {message}\n")
    print(markdown_report(results))
    print(f"\nwrote {out}/results.json, results.md, rankings_*.csv, recall_by_bucket.png")
    print(f"peak memory (max resident set) {peak_rss_bytes() / 2**30:.2f} GiB")
    if args.json:
        command = "hybrid-eval " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        record = {"command": command, "wall_seconds": round(time.perf_counter() - start, 1),
                  "peak_rss_bytes": peak_rss_bytes(), **results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2))


def show_progress(level: str) -> None:
    """The per-model progress lines on stderr at log level WARNING (at INFO the log shows them;
    above WARNING nothing is shown)."""
    if level != "WARNING" or progress.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False


def packaged_configs() -> list[str]:
    """Names of the configs shipped in the ``configs`` package."""
    from importlib import resources

    return sorted(p.name.removesuffix(".yaml") for p in resources.files("configs").iterdir() if p.name.endswith(".yaml"))


def resolve_config(name: str) -> Path:
    """A config path as given, or a packaged config by name (``default`` -> configs/default.yaml)."""
    from importlib import resources

    path = Path(name)
    if path.exists():
        return path
    packaged = resources.files("configs") / f"{name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and packaged.is_file():
        return Path(str(packaged))
    raise FileNotFoundError(f"config {name!r} not found: give a YAML path or one of the packaged configs "
                            f"{packaged_configs()}")


if __name__ == "__main__":
    main()
