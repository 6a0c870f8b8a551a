"""The drift scenario (``loopline demo drift``) on the embedded stack: the loop recovers
accuracy on held-out shifted inputs without forgetting the world, through the watchdog, the
gate, the canary and auto-promotion. (Refused corrections are the red team's colluders in
test_redteam.py, and the shuffled-answers dataset in test_finetune_training.py: the gate
refuses, no version is produced, production stays put.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.drift.scenario import run_drift

pytestmark = pytest.mark.integration


def _data(tmp_path: Path, template: Path) -> Path:
    shutil.copytree(template, tmp_path / "data" / "registry")
    return tmp_path / "data"


def test_drift_is_recovered_by_feedback_watchdog_finetune_gate_canary_promotion(
        tmp_path: Path, tiny_registry_template: Path) -> None:
    result = run_drift(_data(tmp_path, tiny_registry_template), log=lambda _: None)
    before, after = result["before"], result["after"]
    assert result["watchdog"]["action"] == "trigger"
    assert result["job"]["status"] == "succeeded" and result["job"]["alias"] == "canary", result["job"]
    assert result["promotion"]["by"] == "finetune:auto-promote", result["promotion"]
    assert result["production_after"] == result["job"]["version"] != result["production_before"]
    assert after["shifted"]["versions"] == after["world"]["versions"] == [result["job"]["version"]]
    assert after["shifted"]["accuracy"] - before["shifted"]["accuracy"] >= 0.40, result
    assert before["world"]["accuracy"] - after["world"]["accuracy"] <= 0.05, result
    assert after["shifted"]["mean_confidence"] > before["shifted"]["mean_confidence"]
    assert result["seconds"] < 600

