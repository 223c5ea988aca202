"""Experiment configs: YAML files mapped onto dataclasses; an unknown key is an error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import dacite
import yaml

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys with a message naming them.

    ``cls=dict`` accepts only an empty mapping (a model that takes no parameters).
    """
    values = dict(values or {})
    if cls is dict:
        if values:
            raise ValueError(f"{where}: unknown key(s) {sorted(values)}; this takes no parameters")
        return values  # type: ignore[return-value]
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
    try:
        return dacite.from_dict(cls, values, config=dacite.Config(strict=True, cast=[tuple]))
    except dacite.DaciteError as error:
        raise ValueError(f"{where}: {error}") from error
    except ValueError as error:  # a range check of the dataclass's own (its __post_init__)
        raise ValueError(f"{where}: {error}") from error


@dataclass
class DataConfig:
    # Data set name: online_retail (bundled), ml-100k, ml-latest-small, ml-1m (CoLaKG implicit
    # split, train+test pooled), ml-1m-predefined (same, with its own test set for split kind
    # predefined), gowalla, amazon-scientific, lastfm (play counts as weight, artist names as
    # text), amazon-magazine (tiny, with times and a catalogue mostly never reviewed),
    # lightgcn_format (any train.txt/test.txt folder or zip; needs `path`).
    name: str = "online_retail"
    # Folder (or zip) holding the data set; default <data-root>/<the data set's usual folder>.
    # Required for lightgcn_format.
    path: str | None = None
    # Drop users/items with fewer interactions (applied repeatedly until stable; logged), on the
    # training side of the split only: the catalogue and the test rows keep every item and user.
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    # Treat ratings below this as non-interactions (explicit-feedback sets); None keeps all.
    min_rating: float | None = None
    # Your own files instead of a named data set (paths relative to the config file; CSV or
    # Parquet): the interaction table and its column names (as hybrid.Columns: user, item,
    # timestamp, weight), the item text table (its id column and the text columns, joined by
    # `template` or ". "), and optionally user side information (each row's columns become a
    # "column: value" profile text for users with no history).
    interactions: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    item_text: str | None = None
    item_id_column: str | None = None
    text_columns: list[str] | None = None
    template: str | None = None
    user_features: str | None = None
    user_id_column: str | None = None
    # Text your users wrote about items (tags, reviews): a table with the interaction table's user,
    # item and timestamp columns and a `written_text_column`. It is an interaction: an item's text
    # gets it only from the training period of each fit (hybrid.data.written).
    written: str | None = None
    written_text_column: str = "text"
    # Whether the item table lists items independently of the interactions (a product feed: yes;
    # a table made from what sold: no). When no, a split by time lists an item from its first
    # interaction on: one first bought after the cut is not in the catalogue at the cut.
    independent_catalogue: bool = False


@dataclass
class SplitConfig:
    # temporal: train before `at` (date) or the first `fraction` of time; leave_last: each user's
    # last `n` by time; cold_items: `cold_fraction` of items held out entirely (or items first seen
    # after `at`); cold_users: `cold_fraction` of users held out; predefined: the data set's own split;
    # replay: a rolling origin, `steps` periods of `step` from `start` (a date, else the `fraction`
    # quantile of time), each model refitted on everything before each step and scored on the step.
    kind: Literal["temporal", "leave_last", "cold_items", "cold_users", "predefined", "replay"] = "temporal"
    at: str | None = None
    fraction: float | None = 0.8
    start: str | None = None
    step: str = "W"  # D, W, M, Q, Y (calendar) or a duration such as "14D"
    steps: int = 4
    n: int = 1
    cold_fraction: float = 0.2
    # cold_items at random: this seeded share of the held-out items loses its test interactions and
    # stays in the catalogue as new items no test user buys, so no model can win the one list by
    # knowing which new items will sell (a real catalogue holds many such items). 0: every held-out
    # item keeps its buyers.
    unsold_fraction: float = 0.5
    # cold_users: reveal each cold user's first `reveal` interactions at test time (0: none).
    reveal: int = 0
    # Per user, the last `valid_per_user` training interactions become the validation set.
    valid_per_user: int = 1
    seed: int = 0


@dataclass
class EvalConfig:
    k: list[int] = field(default_factory=lambda: [10, 20])
    batch_size: int = 1024  # users scored at once
    # Evaluate at most this many test users (seeded sample, same users for every model); None: all.
    max_users: int | None = None
    # Only users with no training interactions (cold users), e.g. to compare with the LLM rows.
    cold_users_only: bool = False
    # LLMRank protocol: also rank each user's held-out item among this many candidates; None: off.
    candidates: int | None = None
    # Split seeds to average over: split.seed + s and seed + s for s in range(seeds); results hold
    # the mean, the sample std and each seed's result. None: 3 below 5,000 users in the data, else 1.
    seeds: int | None = None
    # With B > 0, a percentile bootstrap 95% interval over users beside every metric (``<m>_lo``,
    # ``<m>_hi``; the same B seeded resamples of the users for every model). 0: none.
    bootstrap: int = 0


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    models: list[str] = field(default_factory=lambda: ["popularity", "random"])
    # Per-model parameters, validated by each model's own config dataclass.
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # Named variants run in turn, each overriding split / eval fields and the model list, e.g.
    # {first_3: {split: {reveal: 3}}}; empty: one run.
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML experiment config; unknown keys at any level raise ``ValueError``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    sections = {"data": DataConfig, "split": SplitConfig, "eval": EvalConfig}
    for key, cls in sections.items():
        if key in values:
            values[key] = dataclasses.asdict(from_dict(cls, values[key], f"{path.name}: {key}"))
    config = from_dict(ExperimentConfig, values, path.name)
    data = config.data
    for name in ("interactions", "item_text", "user_features", "written"):
        value = getattr(data, name)
        if value is not None and not Path(value).expanduser().is_absolute():
            setattr(data, name, str((path.parent / value).resolve()))  # relative to the config file
    if data.interactions is None and any(getattr(data, n) is not None for n in ("item_text", "user_features", "written")):
        raise ValueError(f"{path.name}: data.item_text / data.user_features / data.written need data.interactions "
                         "(your own files)")
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config, saved with every result."""
    return dataclasses.asdict(config)
