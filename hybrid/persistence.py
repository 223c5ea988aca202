"""Saving a model folder so that nothing half-written can load: atomic replace, manifest, checks.

    with atomic_folder(path) as tmp:    # everything is written into a sibling temporary folder
        write files into tmp
        write_manifest(tmp, shapes)     # format version, each file's size and SHA-256, shapes
    # only now is tmp renamed over path (the previous version kept until the rename succeeded)

A crash or a full disk mid-save leaves the previous folder as it was (and a stray ``.tmp-``
sibling, never read). :func:`verify_folder` checks a folder before anything is read from it:
every file of the manifest present, the format version known, each checksum equal; otherwise a
``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` (files fsynced first)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder; choose another path to save to")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        try:
            tmp.rename(target)
        except BaseException:
            if old.exists():
                old.rename(target)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)
        _fsync(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(folder: Path, kind: str, shapes: dict[str, list[int]] | None = None) -> None:
    """``manifest.json``: format version, the model kind, and every file's size and SHA-256."""
    files = {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _digest(p)}
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE
    }
    manifest = {"format_version": FORMAT_VERSION, "kind": kind, "files": files, "shapes": shapes or {}}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def verify_folder(path: str | Path, kind: str) -> dict[str, Any]:
    """The manifest of a saved folder after checking it (see the module docstring); raises
    ``FileNotFoundError`` for a missing folder and ``ValueError`` naming the file at fault."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected a model saved with save()")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        raise ValueError(f"{manifest_path} is missing: {folder} is not a complete saved model (save it again)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{manifest_path} is not valid JSON ({error}); the folder is damaged") from error
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{manifest_path}: format version {version!r} is not the {FORMAT_VERSION} this version reads")
    if manifest.get("kind") != kind:
        raise ValueError(f"{manifest_path}: this folder holds a {manifest.get('kind')!r} model, not {kind!r}")
    for name, entry in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{file} is missing (listed in {MANIFEST_FILE}); the folder is incomplete")
        if file.stat().st_size != entry["bytes"]:
            raise ValueError(f"{file} has {file.stat().st_size} bytes, {entry['bytes']} were saved: truncated or replaced")
        if _digest(file) != entry["sha256"]:
            raise ValueError(f"{file} does not match its checksum in {MANIFEST_FILE}: the file was changed or damaged")
    return manifest


def folder_version(path: str | Path) -> str | None:
    """SHA-256 of a saved folder's manifest, None where it has none. The manifest holds every
    file's checksum, so the version changes with any save over the folder: a writer that read it
    before loading can tell that someone saved since, and refuse to overwrite that save."""
    manifest = Path(path) / MANIFEST_FILE
    try:
        return _digest(manifest)
    except FileNotFoundError:
        return None


def check_shape(name: str, actual: tuple[int, ...] | list[int], expected: tuple[int, ...] | list[int], where: Path) -> None:
    """A ``ValueError`` naming ``name`` in ``where`` unless its shape is ``expected``."""
    if tuple(actual) != tuple(expected):
        raise ValueError(f"{where}: {name} has shape {tuple(actual)}, expected {tuple(expected)}; the folder is inconsistent")
