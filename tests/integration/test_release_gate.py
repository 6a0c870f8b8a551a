"""``loopline finetune gate``: the pipeline's eval-gate stage scores what is served on the sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.registry import Registry
from services.finetune.release_gate import release_gate
from services.finetune.settings import FinetuneSettings
from tests.servers import REPO, service_env

pytestmark = pytest.mark.integration


def gate_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "finetune", "gate", *args], cwd=REPO,
                          env=service_env(data_dir), capture_output=True, text=True, timeout=300)


def test_release_gate_scores_production_of_every_model_with_sample_data(data_dir: Path) -> None:
    rows = release_gate(Registry(data_dir / "registry"), data_dir, "samples", 0.5, FinetuneSettings())
    assert {(r.model, r.alias, r.metric) for r in rows} == {("vqa-blip", "production", "accuracy"),
                                                          ("qa-extractive", "production", "f1")}
    assert all(0.0 <= r.score <= 1.0 and r.rows > 0 for r in rows)

    passing = gate_cli(data_dir, "--min-score", "0", "--json")
    assert passing.returncode == 0, passing.stderr
    assert {r["model"] for r in json.loads(passing.stdout)} == {"vqa-blip", "qa-extractive"}
    strict = gate_cli(data_dir, "--min-score", "1.0", "--json")
    below = [r for r in json.loads(strict.stdout) if r["score"] < 1.0]
    assert strict.returncode == (1 if below else 0)
    if below:
        assert "release blocked" in strict.stderr and below[0]["model"] in strict.stderr


def test_release_gate_explains_a_missing_dataset(data_dir: Path) -> None:
    done = gate_cli(data_dir, "--dataset-dir", "nowhere")
    assert done.returncode == 2 and "cannot run the release gate" in done.stderr and "nowhere" in done.stderr
