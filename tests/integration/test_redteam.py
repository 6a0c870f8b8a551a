"""The red team (``loopline redteam``) on the embedded stack, short sets, all five scenarios: one
liar, three colluding liars, a flood, three honest users teaching a new colour, and a reviewer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.redteam.scenario import QUICK, SCENARIOS, run_redteam
from services.common.registry import Registry
from tests.conftest import REPO

pytestmark = pytest.mark.integration
OUTPUT = REPO / "test-output"


def test_strangers_cannot_steer_the_learning_loop(tmp_path: Path, tiny_registry_template: Path) -> None:
    shutil.copytree(tiny_registry_template, tmp_path / "data" / "registry")
    registry = Registry(tmp_path / "data" / "registry")
    versions_before = registry.versions("vqa-blip")
    result = run_redteam(tmp_path / "data", SCENARIOS, QUICK, log=lambda _: None)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "redteam-quick.json").write_text(json.dumps(result, indent=2, default=str))
    s = result["scenarios"]
    assert list(s) == ["liar", "colluders", "flood", "honest", "reviewer"]
    # one liar: pending corrections never train, the job refuses at start
    assert s["liar"]["job"]["status"] == "refused at start", s["liar"]
    assert "no accepted correction" in s["liar"]["job"]["error"]
    # three colluders pass quorum; the slice gate refuses, and the lie never becomes a version
    colluders = s["colluders"]
    assert colluders["job"]["status"] == "rejected" and "slices" in colluders["job"]["failed_checks"], colluders
    assert "slice answer=red" in colluders["job"]["error"], colluders["job"]["error"]
    assert colluders["job"]["version"] is None and colluders["versions_produced"] == [], colluders
    kept = colluders["job"]["quarantined"]
    assert kept and (registry.root / kept / "manifest.json").is_file(), colluders["job"]
    assert colluders["refused_candidate_true_rate"] < 0.8, "the refused candidate did learn the lie (evidence)"
    for name in ("liar", "colluders"):
        assert s[name]["production_after"] == s[name]["production_before"], s[name]
        assert s[name]["true_answer_rate"] and all(t >= 0.8 for t in s[name]["true_answer_rate"].values()), s[name]
        assert s[name]["passed"], s[name]
    # a flood: 429 within the first minute, the gateway stays ready, accepted feedback is all stored
    assert s["flood"]["first_429"]["call"] <= 21 and s["flood"]["readyz"] == 200, s["flood"]
    assert int(s["flood"]["first_429"]["retry_after"]) >= 1
    assert s["flood"]["stored"] == s["flood"]["status_codes"][201], "accepted feedback is never lost"
    # three honest users teach pink: +40 points on held-out pink images, the world at most 5 points lower
    honest = s["honest"]
    assert honest["job"]["status"] == "succeeded" and honest["job"]["alias"] == "canary", honest["job"]
    assert honest["pink_gain_points"] >= 40 and honest["world_loss_points"] <= 5, honest
    assert sorted(honest["job"]["senders"]) == ["client:user-0", "client:user-1", "client:user-2"], honest["job"]
    assert honest["passed"], honest
    assert s["reviewer"]["passed"], s["reviewer"]
    # the only version the whole run produced is the honest one
    assert registry.versions("vqa-blip") == [*versions_before, honest["job"]["version"]]
    assert result["passed"], {k: v.get("passed") for k, v in s.items()}
