"""Single leader: a second fine-tune (or watchdog) process on the same data dir waits as a
standby and takes no job; when the leader dies, the standby takes over.

Two fine-tune pods (a rolling update's overlap, a scale-up) would share one SQLite queue over
NFS, which can corrupt it; two watchdogs would fire the same retraining twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ADMIN_TOKEN
from tests.servers import Service, start_service

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _wait_status(svc: Service, status: int, timeout_s: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(svc.url + "/readyz", timeout=5)
            if last.status_code == status:
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{svc.name} /readyz never answered {status}: {last.text if last else 'no answer'}")


@pytest.mark.parametrize("service", ["finetune", "watchdog"])
def test_a_second_instance_waits_and_takes_over_when_the_leader_dies(tmp_path: Path, service: str) -> None:
    data, log_dir = tmp_path / "data", tmp_path / "logs"  # no models needed: only the lock is exercised
    (data / "state").mkdir(parents=True)
    log_dir.mkdir()
    env = {"LOOPLINE_ADMIN_TOKEN": ADMIN_TOKEN, "LOOPLINE_FINETUNE_NUM_THREADS": "1",
           "LOOPLINE_WATCHDOG_TRIGGER": "dry-run", "LOOPLINE_WATCHDOG_INTERVAL_S": "3600"}
    leader = start_service(service, data, log_dir, **env).wait_ready(60)
    standby = start_service(service, data, log_dir, **env).wait_ready(60, path="/healthz")
    try:
        body = _wait_status(standby, 503).json()
        assert body["status"] == "standby" and "leads on this data dir" in body["error"]["message"], body
        assert httpx.get(leader.url + "/readyz").status_code == 200
        if service == "finetune":
            refused = httpx.post(standby.url + "/v1/jobs", headers=AUTH, timeout=10,
                                 json={"model": "qa-extractive", "dataset": "samples/qa.json"})
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "standby", refused.text
            assert "Retry-After" in refused.headers
        leader.kill()  # SIGKILL: the kernel drops its lock
        _wait_status(standby, 200)
        assert "leads now" in standby.log_text()
    finally:
        leader.stop()
        standby.stop()
