"""Experiment configs shipped with the package (YAML files; see hybrid.config)."""
