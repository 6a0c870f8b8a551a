"""The fine-tune service as a real process: admin token, jobs API, cancel, kill -9 mid-training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.registry import Registry
from tests.fixtures import wait_for
from tests.servers import Service, start_service

pytestmark = pytest.mark.integration
ENV = {"LOOPLINE_FINETUNE_NUM_THREADS": "1", "LOOPLINE_FINETUNE_PROGRESS_INTERVAL_S": "0.2"}
LONG = {"min_steps": 100_000, "max_steps": 100_000}


@pytest.fixture(scope="module")
def finetune(module_data: Path, log_dir: Path) -> Iterator[Service]:
    svc = start_service("finetune", module_data, log_dir, **ENV).wait_ready(60)
    yield svc
    svc.stop()


def auth(data: Path) -> dict[str, str]:
    return {"Authorization": "Bearer " + (data / "state" / "admin_token").read_text().strip()}


def test_jobs_routes_need_the_admin_token(finetune: Service, module_data: Path) -> None:
    assert httpx.get(finetune.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(finetune.url + "/v1/jobs")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(finetune.url + "/v1/jobs", json={"model": "qa-extractive", "dataset": "samples/qa.json"},
                   headers={"Authorization": "Bearer wrong-token-wrong-token"})
    assert r.status_code == 401
    assert (module_data / "state" / "admin_token").stat().st_mode & 0o777 == 0o600


def test_bad_requests_are_refused_with_reasons(finetune: Service, module_data: Path) -> None:
    h = auth(module_data)
    r = httpx.post(finetune.url + "/v1/jobs", json={"model": "qa-extractive"}, headers=h)
    assert r.status_code == 422 and "dataset" in r.json()["error"]["message"]
    r = httpx.post(finetune.url + "/v1/jobs", json={"model": "nope", "dataset": "samples/qa.json"}, headers=h)
    assert r.status_code == 404
    assert httpx.get(finetune.url + "/v1/jobs/ft-missing", headers=h).status_code == 404


def test_a_job_trains_gates_and_reports_progress(finetune: Service, module_data: Path) -> None:
    h = auth(module_data)
    r = httpx.post(finetune.url + "/v1/jobs", headers=h, json={
        "model": "qa-extractive", "dataset": "samples/qa.json", "hyperparameters": {"min_steps": 60},
        "reason": "test", "trigger": "test"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["id"].startswith("ft-")
    seen: list[dict[str, Any]] = []

    def fetch() -> dict[str, Any]:
        seen.append(httpx.get(f"{finetune.url}/v1/jobs/{job['id']}", headers=h).json())
        return seen[-1]

    final = wait_for(fetch, lambda j: j["status"] not in ("queued", "running"))
    assert final["status"] == "succeeded", final
    assert final["alias"] == "canary" and final["version"] == Registry(module_data / "registry").resolve("qa-extractive", "canary")
    assert final["progress"]["step"] == final["progress"]["total"] == 60
    assert final["gate"]["passed"] and final["data"]["rows"] == 6
    listed = httpx.get(finetune.url + "/v1/jobs", headers=h).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]


def test_cancel_a_queued_and_a_running_job(finetune: Service, module_data: Path) -> None:
    h = auth(module_data)
    body = {"model": "qa-extractive", "dataset": "samples/qa.json", "hyperparameters": LONG, "promote": False}
    running = httpx.post(finetune.url + "/v1/jobs", headers=h, json=body).json()
    queued = httpx.post(finetune.url + "/v1/jobs", headers=h, json=body).json()
    wait_for(lambda: httpx.get(f"{finetune.url}/v1/jobs/{running['id']}", headers=h).json(),
             lambda j: j["progress"]["step"] > 0)
    r = httpx.post(f"{finetune.url}/v1/jobs/{queued['id']}/cancel", headers=h)
    assert r.json()["status"] == "cancelled"
    httpx.post(f"{finetune.url}/v1/jobs/{running['id']}/cancel", headers=h)
    final = wait_for(lambda: httpx.get(f"{finetune.url}/v1/jobs/{running['id']}", headers=h).json(),
                     lambda j: j["status"] == "cancelled", 30)
    assert final["version"] is None
    assert httpx.post(f"{finetune.url}/v1/jobs/{running['id']}/cancel", headers=h).status_code == 409


def test_kill_9_mid_training_leaves_no_version_and_restart_fails_the_job(data_dir: Path, log_dir: Path) -> None:
    reg = Registry(data_dir / "registry")
    before = reg.versions("qa-extractive")
    svc = start_service("finetune", data_dir, log_dir, **ENV).wait_ready(60)
    try:
        h = auth(data_dir)
        job = httpx.post(svc.url + "/v1/jobs", headers=h, json={
            "model": "qa-extractive", "dataset": "samples/qa.json", "hyperparameters": LONG}).json()
        wait_for(lambda: httpx.get(f"{svc.url}/v1/jobs/{job['id']}", headers=h).json(),
                 lambda j: j["progress"]["step"] > 5)
        svc.kill()  # SIGKILL to the whole process group
        assert reg.versions("qa-extractive") == before
        svc = start_service("finetune", data_dir, log_dir, **ENV).wait_ready(60)
        after = httpx.get(f"{svc.url}/v1/jobs/{job['id']}", headers=h).json()
        assert after["status"] == "failed" and "interrupted" in after["error"]
        assert after["version"] is None
        assert reg.versions("qa-extractive") == before
        assert not list((data_dir / "registry" / "qa-extractive").glob(".tmp-*"))
        assert reg.aliases("qa-extractive")["canary"] is None
    finally:
        svc.stop()
