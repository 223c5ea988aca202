"""A result written from a dirty tree says so wherever its commit is shown (issue 34, item 4)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hybrid.evaluation.provenance import head_commit, recorded_commit, short_commit

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "442db13cf89005e0b99dc39ce3c1065fc4d00591"


def _renderer() -> Any:
    spec = importlib.util.spec_from_file_location("render_results", ROOT / "scripts" / "render_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_results"] = module
    spec.loader.exec_module(module)
    return module


def test_short_commit_keeps_the_dirty_mark() -> None:
    assert short_commit(COMMIT) == "442db13cf890"
    assert short_commit(COMMIT + "+dirty") == "442db13cf890+dirty"
    assert short_commit(None) == "unknown"
    assert recorded_commit({"provenance": {"git_commit": COMMIT + "+dirty"}}) == "442db13cf890+dirty"
    assert recorded_commit({"git_commit": COMMIT}) == "442db13cf890"


def test_provenance_line_says_a_dirty_result_came_from_uncommitted_code() -> None:
    head = head_commit()
    render = _renderer()
    line = render.provenance_line(f"{head}+dirty")
    assert "+dirty" in line and "uncommitted" in line
    assert "unchanged since" not in line
    if head is not None:  # a clean commit of this checkout: nothing changed since it
        assert "hybrid/ unchanged since" in render.provenance_line(head)
