"""`loopline models bootstrap --tiny --only NAME` builds the models named, and refuses unknown names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.registry import Registry
from services.ops.bootstrap import bootstrap_tiny, tiny_models

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_an_unknown_name_is_refused_before_any_training(tmp_path) -> None:
    with pytest.raises(ValueError, match="no tiny model named nope; the tiny models are"):
        bootstrap_tiny(Registry(tmp_path / "registry"), only=("nope",), show_progress=False)
    assert not any((tmp_path / "registry").glob("*/*/manifest.json"))


def test_the_cli_names_the_tiny_models_on_a_typo(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "services.cli", "models", "bootstrap", "--tiny", "--only", "qa-extractiv"],
                          cwd=REPO, env={"LOOPLINE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no tiny model named qa-extractiv" in done.stderr + done.stdout
    for name in tiny_models():
        assert name in done.stderr + done.stdout


def _weights(root: Path, model: str) -> dict[str, str]:
    manifest = Registry(root).manifest(model, Registry(root).versions(model)[-1])
    return {name: digest for name, digest in manifest["files"].items() if name.endswith(".safetensors")}


def test_models_built_in_worker_processes_are_the_ones_built_one_after_the_other(tmp_path, tiny_registry_template) -> None:
    """``jobs`` > 1 trains each model in a process of its own; the files are the same as a fresh
    ``--jobs 1`` bootstrap's (each builder fixes its thread count: torch's and TensorFlow's one)
    and as the session's tiny registry's, and each model is production with its held-out scores."""
    styles = tuple(name for name, task in tiny_models().items() if task.model_prefix)[:2]
    assert len(styles) == 2, "the test needs two cheap models (the style family's)"
    parallel = Registry(tmp_path / "parallel")
    made = bootstrap_tiny(parallel, only=styles, jobs=2, show_progress=False)
    assert [ref.model for ref in made] == list(styles)
    # one after the other, in a fresh process as `loopline models bootstrap --jobs 1` runs (this
    # session's TensorFlow may already run on other threads); one model is enough to compare
    done = subprocess.run([sys.executable, "-m", "services.cli", "models", "bootstrap", "--tiny", "--jobs", "1",
                           "--only", styles[-1]], cwd=REPO, env={**os.environ, "LOOPLINE_DATA_DIR": str(tmp_path / "serial")},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _weights(tmp_path / "parallel", styles[-1]) == _weights(tmp_path / "serial" / "registry", styles[-1])
    for name in styles:
        assert parallel.resolve(name, "production") == 1
        assert parallel.manifest(name, 1)["metrics"]["heldout"], name
        # the session's tiny registry (built by the default, all models at once) holds the same files
        assert _weights(tmp_path / "parallel", name) == _weights(tiny_registry_template, name), name
    assert bootstrap_tiny(parallel, if_empty=True, only=styles, jobs=2, show_progress=False) == []


def test_jobs_must_be_positive(tmp_path) -> None:
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        bootstrap_tiny(Registry(tmp_path / "registry"), only=("qa-extractive",), jobs=0, show_progress=False)
