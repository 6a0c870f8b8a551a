"""The compose stack, for real: docker-compose (Debian's CLI) on podman's Docker API.

Where the Elastic images cannot be pulled, docker-compose.standins.yml puts the project's
Elasticsearch stand-in (an 8.15 server's REST subset) in a container on the compose network,
so the gateway, fine-tune and watchdog containers talk to "Elasticsearch" as in production.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from container_helpers import ENGINE, REPO, engine_env, free_port, podman, sh, wait_for

pytestmark = [pytest.mark.container, pytest.mark.slow]

PROJECT = "loopline-ctest"
TOKEN = "compose-test-admin-token-0123456789"
SAMPLES = REPO / "data" / "samples"
CONTEXT = "The red chair stands next to a blue table. A green lamp is on the table."
CORRECTIONS = [("What color is the chair?", "red"), ("What is on the table?", "a green lamp"),
               ("What color is the table?", "blue")]


class Stack:
    def __init__(self, files: list[str], env: dict[str, str], gateway: str) -> None:
        self.files, self.env, self.gateway = files, env, gateway

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> Any:
        cmd = ["docker-compose", "-p", PROJECT]
        for f in self.files:
            cmd += ["-f", f]
        return sh([*cmd, *args], env=self.env, timeout=timeout, check=check)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, timeout=60)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def containers(self, *extra: str) -> list[str]:
        out = podman("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}", *extra).stdout
        return out.split()


def seed_registry(stack: Stack, registry: Path, image_tag: str) -> None:
    """The test session's tiny models into the stack's data volume, before `up`: the models job
    then finds them and builds nothing (its training in an image is tested in test_images.py),
    which saves the suite minutes of training. The volume carries compose's labels, as if
    compose had made it, so `down -v` removes it."""
    volume = f"{PROJECT}_loopline-data"
    podman("volume", "create", "--label", f"com.docker.compose.project={PROJECT}",
           "--label", "com.docker.compose.volume=loopline-data", volume)
    podman("run", "--rm", "--user", "0", "--network", "none", "-v", f"{volume}:/data", "-v", f"{registry}:/seed:ro",
           "--entrypoint", "sh", f"loopline/finetune:{image_tag}", "-c",
           "mkdir -p /data/registry && cp -a /seed/. /data/registry/ && chown -R 10001:0 /data", timeout=300)


@pytest.fixture(scope="module")
def stack(built_images: str, tiny_registry_template: Path) -> Iterator[Stack]:
    was_running = sh([str(ENGINE), "status"], check=False).returncode == 0
    try:
        sh([str(ENGINE), "start"])
    except AssertionError:
        sh([str(ENGINE), "stop"], check=False)
        raise
    files = ["docker-compose.yml"]
    real_es = podman("image", "exists", "docker.elastic.co/elasticsearch/elasticsearch:8.15.3", check=False)
    if real_es.returncode != 0:
        print("compose: the Elasticsearch image cannot be pulled here: the stand-in container replaces it")
        files.append("docker-compose.standins.yml")
    port = free_port()
    env = {**engine_env(), "LOOPLINE_ADMIN_TOKEN": TOKEN, "LOOPLINE_IMAGE_TAG": built_images,
           "LOOPLINE_GATEWAY_PORT": str(port), "LOOPLINE_ELASTICSEARCH_PORT": str(free_port()),
           "LOOPLINE_KIBANA_PORT": str(free_port())}
    s = Stack(files, env, f"http://127.0.0.1:{port}")
    s.compose("down", "-v", "--remove-orphans", check=False)
    started = time.monotonic()
    try:
        seed_registry(s, tiny_registry_template, built_images)
        s.compose("up", "-d", "--no-build", timeout=1200)
        wait_for(lambda: httpx.get(f"{s.gateway}/readyz?all=true", timeout=5).status_code == 200, timeout=600, interval=3,
                 what="gateway /readyz through the published port")
        print(f"compose: stack ready in {time.monotonic() - started:.0f}s")
        yield s
    except Exception:
        print(s.compose("ps", check=False).stdout)
        print(s.compose("logs", "--tail=40", check=False).stdout[-8000:])
        raise
    finally:
        s.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        left = s.containers()
        volumes = podman("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
        if not was_running:
            sh([str(ENGINE), "stop"], check=False)
        assert not left and not volumes, f"down -v left containers {left} and volumes {volumes}"


def test_the_seeds_four_calls_through_the_published_port(stack: Stack) -> None:
    with stack.client() as c:
        vqa = c.post("/predict", json={"image_path": "samples/images/red_square.png", "question": "what is this item?"})
        assert vqa.status_code == 200, vqa.text
        assert {"answer", "quality_score", "latency_seconds", "question"} <= vqa.json().keys()
        qa = c.post("/answer", json={"question": "What is the capital of France?",
                                     "context": "France is a country in Europe. Its capital city is Paris."})
        assert qa.status_code == 200 and {"answer", "confidence", "start_pos", "end_pos"} <= qa.json().keys()
        with open(SAMPLES / "images" / "blue_circle.jpg", "rb") as f:
            style = c.post("/stylize", files={"content_image": ("blue_circle.jpg", f, "image/jpeg")},
                           data={"model": "model1"})
        assert style.status_code == 200, style.text
        assert base64.b64decode(style.json()["image_b64"])[:8] == b"\x89PNG\r\n\x1a\n"
        fb = c.post("/feedback", json={"feedback": "bad", "model": "model1",
                                       "output_image_filename": style.json()["output_image_filename"]})
        assert fb.status_code in (200, 201), fb.text


def test_the_v1_routes_through_the_published_port(stack: Stack) -> None:
    with stack.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        with open(SAMPLES / "images" / "blue_circle.jpg", "rb") as f:
            vqa = c.post("/v1/vqa", files={"image": ("b.jpg", f, "image/jpeg")}, data={"question": "what color is it?"})
        assert vqa.status_code == 200 and vqa.json()["model"]["task"] == "vqa"
        qa = c.post("/v1/qa", json={"question": "Who?", "context": "Ada wrote it."})
        assert qa.status_code == 200 and qa.json()["model"]["name"] == "qa-extractive"
        styles = c.get("/v1/styles").json()
        assert styles
        models = c.get("/v1/models").json()
        assert "qa-extractive" in str(models) and "vqa-blip" in str(models)
        summary = c.get("/v1/metrics/summary", params={"task": "qa", "window": "1h"})
        assert summary.status_code == 200, summary.text
        assert "loopline" in c.get("/metrics").text
        assert c.post("/v1/models/qa-extractive/rollback").status_code in (401, 403)  # admin token required


def test_the_models_job_keeps_the_registry_it_finds(stack: Stack) -> None:
    """`bootstrap --if-empty` on a volume that already holds models builds nothing and exits 0."""
    logs = stack.compose("logs", "--no-color", "models").stdout
    assert "nothing built" in logs, logs[-2000:]


def test_feedback_corrections_reach_a_finetune_job_through_elasticsearch(stack: Stack) -> None:
    """The gateway writes feedback to Elasticsearch; the fine-tune container reads it from there."""
    with stack.client() as c:
        request_ids = []
        for question, answer in CORRECTIONS:
            r = c.post("/v1/qa", json={"question": question, "context": CONTEXT})
            assert r.status_code == 200
            request_ids.append(r.json()["request_id"])
            # sent with the admin key: accepted at once (an anonymous correction waits for a quorum or a reviewer)
            fb = c.post("/v1/feedback", headers=stack.admin(),
                        json={"request_id": r.json()["request_id"], "rating": "bad", "correction": answer})
            assert fb.status_code == 201, fb.text
        # inference events reach Elasticsearch in the gateway's next bulk flush (about a second),
        # feedback at once: wait until the stored requests are searchable, as a user would
        es = f"http://127.0.0.1:{stack.env['LOOPLINE_ELASTICSEARCH_PORT']}"

        def stored(request_id: str) -> bool:
            r = httpx.post(f"{es}/loopline-events/_search", timeout=5,
                           json={"query": {"term": {"http.request.id": request_id}}, "size": 1})
            return r.status_code == 200 and r.json()["hits"]["total"]["value"] == 1

        for request_id in request_ids:
            wait_for(lambda rid=request_id: stored(rid), timeout=60, interval=0.5, what=f"request {request_id} stored")
        job = c.post("/v1/finetune", headers=stack.admin(), json={
            "model": "qa-extractive", "use_feedback": True, "hyperparameters": {"min_steps": 100}})
        assert job.status_code in (200, 201, 202), job.text
        job_id = job.json()["id"]

        def finished() -> dict[str, Any] | None:
            view = c.get(f"/v1/finetune/{job_id}", headers=stack.admin()).json()
            return view if view["status"] in ("succeeded", "rejected", "failed", "cancelled") else None

        view = wait_for(finished, timeout=600, interval=3, what=f"fine-tune job {job_id}")
        assert view["status"] == "succeeded", f"{view['status']}: {view.get('error')} (gate: {view.get('gate')})"
        assert view["data"]["feedback"] == len(CORRECTIONS), view["data"]
        assert view["alias"] == "canary"
        version = view["version"]

        def served() -> bool:
            r = c.post("/v1/qa", json={"question": "What color is the chair?", "context": CONTEXT},
                       headers={"X-Model-Version": str(version)})
            return r.status_code == 200 and r.json()["model"]["version"] == version

        wait_for(served, timeout=120, interval=2, what=f"qa-extractive v{version} served as canary")
        aliases = [m for m in c.get("/v1/models").json()["models"] if m["name"] == "qa-extractive"][0]["aliases"]
        assert aliases["canary"] == version


def test_a_crashed_service_comes_back_and_the_gateway_recovers(stack: Stack) -> None:
    qa_ids = stack.containers("--filter", "label=com.docker.compose.service=qa")
    assert len(qa_ids) == 1
    before = podman("inspect", "--format", "{{.State.StartedAt}}", qa_ids[0]).stdout.strip()
    # A crash: SIGKILL to the service's process from outside. (`docker-compose kill` on podman
    # counts as a stop by the user, which no restart policy undoes; on Docker it restarts.)
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", qa_ids[0]).stdout.strip())
    assert pid > 0
    os.kill(pid, signal.SIGKILL)
    with stack.client() as c:
        def restarted() -> bool:
            state = podman("inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", qa_ids[0]).stdout.split(" ", 1)
            return state[0] == "true" and state[1].strip() != before

        wait_for(restarted, timeout=120, interval=1, what="qa restarted by its restart policy")
        wait_for(lambda: c.post("/v1/qa", json={"question": "Who?", "context": "Ada wrote it."}).status_code == 200,
                 timeout=300, interval=2, what="the gateway answering qa again")
        assert c.get("/readyz").status_code == 200


def test_down_v_leaves_nothing_running(stack: Stack) -> None:
    """Last in the module: the stack runs, then `down -v` removes every container and volume."""
    assert len(stack.containers("--filter", "status=running")) >= 7
    stack.compose("down", "-v", "--remove-orphans", timeout=300)
    assert stack.containers() == []
    volumes = podman("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
    assert volumes == []
