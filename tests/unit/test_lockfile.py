"""requirements.lock: generated from pyproject.toml, hashed, and what `make install` installed."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest

from services.ops import lockfile

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "requirements.lock"


def test_the_lock_agrees_with_pyproject() -> None:
    assert lockfile.check(PYPROJECT, LOCK) == []


def test_every_pin_is_exact_and_hashed_and_torch_is_the_cpu_build() -> None:
    pins = lockfile.parse_lock(LOCK)
    assert len(pins) > 100
    assert all(hashes >= 1 for _version, hashes in pins.values())
    assert pins["torch"][0] == "2.13.0+cpu"
    assert not [name for name in pins if name.startswith("nvidia-")], "a CUDA package slipped into the lock"
    assert "loopline" not in pins, "the project itself is installed from the tree, never from the lock"
    assert {"pip", "setuptools"} <= set(pins), "the installer is locked too"


def _copy(tmp_path: Path, edit=None) -> tuple[Path, Path]:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    text = PYPROJECT.read_text()
    pyproject.write_text(edit(text) if edit else text)
    shutil.copy(LOCK, lock)
    return pyproject, lock


def test_a_changed_dependency_is_caught(tmp_path) -> None:
    pyproject, lock = _copy(tmp_path, lambda t: t.replace('"fastapi>=0.115"', '"fastapi>=99"'))
    problems = lockfile.check(pyproject, lock)
    assert any("changed since requirements.lock was generated" in p for p in problems), problems
    assert any(p.startswith("fastapi==") and "does not satisfy" in p for p in problems), problems


def test_a_new_dependency_missing_from_the_lock_is_caught(tmp_path) -> None:
    pyproject, lock = _copy(tmp_path, lambda t: t.replace('"psutil>=5.9",', '"psutil>=5.9",\n  "left-pad-nonexistent>=1",'))
    problems = lockfile.check(pyproject, lock)
    assert any("left-pad-nonexistent" in p and "not in requirements.lock" in p for p in problems), problems


def test_an_unhashed_or_missing_lock_is_caught(tmp_path) -> None:
    pyproject, lock = _copy(tmp_path)
    lock.write_text(lock.read_text() + "left-pad==1.0\n    # via nothing\n")
    assert "left-pad is pinned without a hash in requirements.lock" in lockfile.check(pyproject, lock)
    lock.unlink()
    assert lockfile.check(pyproject, lock) == ["requirements.lock is missing: run `make lock`"]


def test_an_extra_expands_the_projects_own_extras() -> None:
    finetune = {lockfile.canonical(lockfile.SPEC_NAME.match(s).group(1)) for s in lockfile.requirements(PYPROJECT, ("finetune",))}
    assert {"torch", "transformers", "peft", "elasticsearch", "kubernetes", "fastapi"} <= finetune
    assert "tensorflow-cpu" not in finetune and "loopline" not in finetune
    with pytest.raises(KeyError):
        lockfile.requirements(PYPROJECT, ("no-such-extra",))


def test_the_installed_environment_is_exactly_the_lock() -> None:
    """`make install` installs the lock and nothing else: the same versions on every machine, any day."""
    pins = lockfile.parse_lock(LOCK)
    installed = {lockfile.canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    installed.pop("loopline", None)
    differ = {name: (version, pins.get(name, (None,))[0]) for name, version in installed.items()
              if pins.get(name, (None,))[0] != version}
    assert not differ, f"installed vs locked: {differ} (run `make install`)"
