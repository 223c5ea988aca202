"""The README's first python block runs as written (on the bundled data), and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_first_python_block_runs_as_written(tmp_path, monkeypatch) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # it may save a model folder: not into the repository
    exec(compile(block.group(1), "README.md", "exec"), {})


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200
