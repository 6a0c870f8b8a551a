"""The Jenkinsfile's local stages, run end to end as `make` targets on a private data root:
lint, the LoRA train smoke, the release gate and the smoke test against a local stack
(images, push and deploy are covered by the container and deploy layers)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.servers import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_pipeline_stages_train_smoke_eval_gate_and_smoke_local(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    env.update(LOOPLINE_DATA_DIR=str(data_dir), LOOPLINE_FINETUNE_NUM_THREADS="2", LOOPLINE_LOG_LEVEL="WARNING",
               **{f"LOOPLINE_{s}_PORT": str(free_port()) for s in ("VQA", "QA", "STYLE", "FINETUNE", "WATCHDOG")})
    gateway = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(["make", "--no-print-directory", "ci-lint", "train-smoke", "eval-gate", "smoke-local",
                           f"GATEWAY_URL={gateway}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "succeeded" in out or "rejected" in out, "the train smoke ran a job to its end"
    assert "release blocked" not in out
    versions = sorted(p.name for p in (data_dir / "registry" / "qa-extractive").iterdir() if p.name.isdigit())
    assert len(versions) >= 2, "train-smoke published a new qa-extractive version"
