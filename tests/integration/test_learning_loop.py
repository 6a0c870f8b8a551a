"""The whole loop on the tiny models: traffic, bad feedback with corrections, the watchdog
fires one job, the job trains and passes the gate, the canary serves, promote, rollback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from services.common.registry import Registry
from services.common.settings import CommonSettings
from services.watchdog.app import build_watchdog
from services.watchdog.settings import WatchdogSettings
from tests.integration.conftest import ADMIN_TOKEN
from tests.servers import start_service

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FACTS = [
    ("What is the capital of France?", "France is a country in Europe. Its capital city is Paris, known for its tower.",
     "Paris"),
    ("What color is the chair?", "The red chair stands next to a blue table. A green lamp is on the table.", "red"),
    ("When was Loopline built?", "Loopline serves three model families. It was built in 2026 by a small team.", "2026"),
    ("Where is the museum?", "The museum is in Paris, near the river. It opened in 1793.", "Paris"),
    ("What is on the table?", "A green lamp is on the table. The chair is red.", "A green lamp"),
]


@pytest.fixture(scope="module")
def loop_stack(stack, module_data: Path, log_dir: Path):
    finetune = start_service("finetune", module_data, log_dir, LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN,
                             LOOPLINE_FINETUNE_NUM_THREADS="1").wait_ready()
    gateway = start_service("gateway", module_data, log_dir, **stack.gateway_env,
                            LOOPLINE_FINETUNE_URL=finetune.url).wait_ready()
    yield stack, gateway, finetune
    gateway.stop()
    finetune.stop()


def test_feedback_to_canary_to_production_and_back(loop_stack, module_data: Path) -> None:
    stack, gateway, finetune = loop_stack
    registry = Registry(module_data / "registry")
    before = registry.resolve("qa-extractive")
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        for user in range(3):  # three users agree on each correction: the quorum accepts them
            for question, context, answer in FACTS:
                r = client.post("/v1/qa", json={"question": question, "context": context})
                assert r.status_code == 200
                fb = client.post("/v1/feedback", json={"request_id": r.json()["request_id"], "rating": "bad",
                                                       "correction": answer}, headers={"X-Client-Id": f"user-{user}"})
                assert fb.status_code == 201
                assert fb.json()["sender"] == f"client:user-{user}"
                assert fb.json()["trust"] == ("accepted" if user == 2 else "pending"), fb.json()

        common = CommonSettings(data_dir=module_data, admin_token=ADMIN_TOKEN, finetune_url=finetune.url)
        policy = WatchdogSettings(min_events=10, min_feedback=5, trigger="finetune", models=["qa-extractive"])
        dog = build_watchdog(common, policy)
        decisions = dog.run_once()
        again = dog.run_once()
        dog.store.close()
        assert [d["action"] for d in decisions] == ["trigger"], decisions
        assert [d["action"] for d in again] == ["hold"], "exactly one job"
        job_id = decisions[0]["result"]["job_id"]

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job = client.get(f"/v1/finetune/{job_id}", headers=AUTH).json()
            if job["status"] in ("succeeded", "rejected", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        assert job["gate"]["passed"] and job["alias"] == "canary" and job["request"]["trigger"] == "watchdog"
        new = job["version"]
        manifest = registry.manifest("qa-extractive", new)
        assert manifest["kind"] == "lora-adapter" and manifest["base"]["version"] == before
        assert len(manifest["lineage"]["feedback_ids"]) >= 10 and manifest["metrics"]
        assert set(manifest["lineage"]["feedback_senders"]) == {"client:user-0", "client:user-1", "client:user-2"}
        assert {c["sender"] for c in job["data"]["corrections"]} == set(manifest["lineage"]["feedback_senders"])
        assert all(c["accepted_by"] == "quorum of 3 senders" for c in job["data"]["corrections"])
        assert registry.aliases("qa-extractive")["canary"] == new

        # requests start reaching the canary (10 % of clients, sticky) once the service has loaded it
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        i = 0
        while not {before, new} <= seen and time.monotonic() < deadline:
            r = client.post("/v1/qa", json={"question": FACTS[0][0], "context": FACTS[0][1]},
                            headers={"X-Client-Id": f"client-{i}"})
            assert r.status_code == 200
            seen.add(r.json()["model"]["version"])
            i += 1
        assert {before, new} <= seen, seen

        promote = client.post("/v1/models/qa-extractive/promote", headers=AUTH, json={"version": new})
        assert promote.status_code == 200 and promote.json()["aliases"]["production"] == new
        assert _eventually_served(client, new)
        rollback = client.post("/v1/models/qa-extractive/rollback", headers=AUTH)
        assert rollback.status_code == 200 and rollback.json()["aliases"]["production"] == before
        assert _eventually_served(client, before)


def _eventually_served(client: httpx.Client, version: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.post("/v1/qa", json={"question": "Who?", "context": "Ada wrote it."})
        if r.status_code == 200 and r.json()["model"]["version"] == version:
            return True
        time.sleep(0.2)
    return False
