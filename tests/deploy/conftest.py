"""Fixtures shared by the deployment checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import ANSIBLE, INVENTORIES, REPO, ansible_env, tool


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """render.yml for every inventory, in parallel (ansible startup dominates), once per session."""
    out, procs = {}, {}
    for inventory in INVENTORIES:
        target = tmp_path_factory.mktemp(f"k8s-{inventory}")
        out[inventory] = target
        procs[inventory] = subprocess.Popen(
            [tool("ansible-playbook"), "-i", str(ANSIBLE / "inventories" / inventory / "hosts.yml"),
             str(ANSIBLE / "render.yml"), "-e", f"render_dir={target}"],
            cwd=REPO, env={**os.environ, **ansible_env()}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
    for inventory, proc in procs.items():
        log, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"render.yml for {inventory} failed:\n{log[-4000:]}"
    return out
