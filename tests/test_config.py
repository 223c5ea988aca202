"""Configs: every shipped YAML loads; unknown keys are named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.config import ExperimentConfig, load_config
from hybrid.retrieval.build import build_model

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load_and_name_known_models(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, ExperimentConfig)
    for name in config.models:
        build_model(name, config.params.get(name))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("modles: [mf]\n", r"unknown key\(s\) \['modles'\]"),
        ("split:\n  kind: temporal\n  fractoin: 0.5\n", r"split: unknown key\(s\) \['fractoin'\]"),
        ("eval:\n  k: [10]\n  cutoff: 3\n", r"eval: unknown key\(s\) \['cutoff'\]"),
        ("split:\n  kind: sideways\n", r"split: .*\"kind\".*sideways"),
    ],
)
def test_unknown_keys_and_values_are_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path)


def test_model_params_are_validated_by_the_model() -> None:
    with pytest.raises(ValueError, match=r"random: unknown key\(s\) \['sed'\]"):
        build_model("random", {"sed": 1})
    with pytest.raises(ValueError, match=r"unknown model 'lightgnc'"):
        build_model("lightgnc")


@pytest.mark.parametrize(("name", "params", "match"), [
    ("hybrid", {"random_negatives": 0}, r"hybrid: random_negatives must be >= 1, got 0"),
    ("hybrid", {"valid_new_share": 1.5}, r"hybrid: valid_new_share must be in \(0, 1\), got 1.5"),
    ("hybrid", {"steps": 0}, r"hybrid: steps must be >= 1, got 0"),
    ("hybrid", {"warm_model": "content"}, r"hybrid: warm_model must be a graph model"),
    ("llm", {"top_n": 0}, r"llm: top_n must be >= 1"),
    ("hybrid+llm", {"weights": [0.5, 1.0]}, r"hybrid\+llm: weights must contain 0"),
    ("hybrid+llm", {"weight": 1.5}, r"hybrid\+llm: weight must lie in \[0, 1\]"),
    ("llm", {"mode": "pairwise"}, r"llm: .*mode"),
    ("llm", {"n_shuffles": 0}, r"llm: n_shuffles must be a positive integer"),
])
def test_model_configs_refuse_out_of_range_values_when_built(name, params, match) -> None:
    """A range error surfaces where the config is built (build_model, which hybrid-eval calls
    before reading data), not inside fit after earlier models ran."""
    with pytest.raises(ValueError, match=match):
        build_model(name, params)


def test_fusion_config_checks_itself_when_built() -> None:
    from hybrid.fusion.config import FusionConfig

    with pytest.raises(ValueError, match=r"random_negatives must be >= 1, got 0"):
        FusionConfig(random_negatives=0)


def test_rehearsal_users_follow_the_width_of_their_rows() -> None:
    """Full rows of a wide catalogue take fewer rehearsal users, never under the floor; small
    catalogues keep max_valid_users; candidate columns read each candidate's text neighbours too,
    whatever the catalogue."""
    from hybrid.fusion.config import MIN_REHEARSAL_USERS, FusionConfig

    config = FusionConfig()
    assert config.rehearsal_users(1_682) == config.max_valid_users  # ML-100K: as before
    assert config.rehearsal_users(17_632) == 2**25 // 17_632 < config.max_valid_users  # Last.fm-sized rows
    assert config.rehearsal_users(config.column_items) == MIN_REHEARSAL_USERS  # the widest full rows: the floor
    columns = config.columns_per_user() * (1 + config.neighbours)
    assert config.row_width(config.column_items + 1) == config.row_width(10**7) == columns
    assert config.rehearsal_users(10**7) == max(MIN_REHEARSAL_USERS, 2**25 // columns)
    assert FusionConfig(rehearsal_cells=2**40).rehearsal_users(20_000) == config.max_valid_users
    with pytest.raises(ValueError, match="rehearsal_cells"):
        FusionConfig(rehearsal_cells=0)


def test_a_config_naming_the_retired_hybrid_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'hybrid_lightgcn' was removed: .*use 'hybrid'"):
        build_model("hybrid_lightgcn", {})
