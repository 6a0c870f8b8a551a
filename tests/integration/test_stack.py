"""`loopline up`: every service on loopback, URLs printed, a second start refused, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.servers import REPO, free_port, service_env

pytestmark = pytest.mark.integration
SERVICES = ("gateway", "vqa", "qa", "style", "finetune", "watchdog")


def test_up_serves_refuses_a_second_start_and_stops_cleanly(data_dir: Path, tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVICES}
    env = service_env(data_dir, **{f"LOOPLINE_{n.upper()}_PORT": str(p) for n, p in ports.items()},
                      LOOPLINE_FINETUNE_NUM_THREADS="1", LOOPLINE_WATCHDOG_TRIGGER="dry-run")
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(gateway + "/readyz?all=true", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(0.5)
        assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}
        for name in SERVICES:
            assert httpx.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=5).status_code == 200, name
        deadline = time.monotonic() + 30
        while "Loopline is up" not in (tmp_path / "up.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        out = (tmp_path / "up.log").read_text()
        assert f"UI        {gateway}/" in out and "/docs" in out
        assert any(line.strip().startswith("gateway |") for line in out.splitlines()), "logs are prefixed by service"

        second = subprocess.run([sys.executable, "-m", "services.cli", "up"], env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr

        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= len(SERVICES)
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(60) == 0
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, [p.pid for p in alive]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
