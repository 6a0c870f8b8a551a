"""`loopline models bootstrap --tiny --only NAME` builds the models named, and refuses unknown names."""

from __future__ import annotations

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
