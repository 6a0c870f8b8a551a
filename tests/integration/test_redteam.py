"""The red team (``loopline redteam``) on the embedded stack, short sets: one liar, three colluding
liars, a flood and a reviewer. (Honest users teaching a colour are the drift scenario's test.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.redteam.scenario import QUICK, run_redteam
from tests.conftest import REPO

pytestmark = pytest.mark.integration
OUTPUT = REPO / "test-output"


def test_strangers_cannot_steer_the_learning_loop(tmp_path: Path, tiny_registry_template: Path) -> None:
    shutil.copytree(tiny_registry_template, tmp_path / "data" / "registry")
    result = run_redteam(tmp_path / "data", ("liar", "colluders", "flood", "reviewer"), QUICK, log=lambda _: None)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "redteam-quick.json").write_text(json.dumps(result, indent=2, default=str))
    s = result["scenarios"]
    assert s["liar"]["job"]["status"] == "refused at start", s["liar"]
    assert "no accepted correction" in s["liar"]["job"]["error"]
    assert s["colluders"]["job"]["status"] == "rejected" and "slices" in s["colluders"]["job"]["failed_checks"], \
        s["colluders"]
    assert "slice answer=red" in s["colluders"]["job"]["error"], s["colluders"]["job"]["error"]
    assert result["production_after"] == result["production_before"]
    for name in ("liar", "colluders"):
        assert s[name]["true_answer_rate"][f"v{result['production_before']}"] >= 0.8, s[name]
    # the version trained on the colluders' lie exists (refused, never aliased) and does lie: the
    # script's strict verdict ("every version produced >= 80 %") reports that; production never saw it
    refused = s["colluders"]["job"]["version"]
    assert refused not in (result["production_after"], None)
    assert s["flood"]["first_429"]["call"] <= 21 and s["flood"]["readyz"] == 200, s["flood"]
    assert int(s["flood"]["first_429"]["retry_after"]) >= 1
    assert s["flood"]["stored"] == s["flood"]["status_codes"][201], "accepted feedback is never lost"
    assert s["reviewer"]["passed"], s["reviewer"]
