"""Kubernetes runner against a local stand-in for the API server that checks each request."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from services.common.events import EventsSettings, open_event_store
from services.common.registry import Registry
from services.finetune.settings import FinetuneSettings
from services.finetune.store import JobStore
from services.finetune.worker import Worker
from tests.conftest import REPO

pytestmark = pytest.mark.integration
TOKEN = "stand-in-token-0123456789"
PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[a-z0-9-]+)/pods$")
JOBS = re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[a-z0-9-]+)/jobs(?:/(?P<name>[a-z0-9-]+)(?P<status>/status)?)?$")


class FakeApiServer:
    """Enough of batch/v1 Jobs: create, read status, delete. Records every request; refuses bad ones."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.fail_create: int | None = None
        self.waiting: dict[str, dict[str, str]] = {}  # job name -> its pod's waiting state
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = self.path.split("?")[0]
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                server.requests.append({"method": self.command, "path": path, "body": body, "query": query,
                                        "auth": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                pods = PODS.match(path)
                if pods and self.command == "GET":  # list pods by job-name, as the Job controller labels them
                    selector = dict(kv.split("=", 1) for kv in
                                    parse_qs(query).get("labelSelector", [""])[0]
                                    .split(",") if "=" in kv)
                    job = selector.get("job-name")
                    items = [{"metadata": {"name": f"{job}-abcde", "labels": {"job-name": job}},
                              "status": {"containerStatuses": [{
                                  "name": "train", "image": server.jobs[job]["spec"]["template"]["spec"]["containers"][0]
                                  ["image"], "imageID": "", "ready": False, "restartCount": 0,
                                  "state": {"waiting": server.waiting[job]}}]}}] \
                        if job in server.waiting and job in server.jobs else []
                    return self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                m = JOBS.match(path)
                if not m:
                    return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                if self.command == "POST" and not m["name"]:
                    if server.fail_create:
                        return self._reply(server.fail_create, {"kind": "Status", "code": server.fail_create,
                                                                "reason": "Forbidden"})
                    assert body["kind"] == "Job" and body["metadata"]["namespace"] == m["ns"]
                    name = body["metadata"]["name"]
                    server.jobs[name] = body
                    server.status[name] = {"active": 1}
                    return self._reply(201, {**body, "status": {}})
                name = m["name"]
                if name not in server.jobs:
                    return self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                if self.command == "GET" and m["status"]:
                    return self._reply(200, {**server.jobs[name], "status": server.status[name]})
                if self.command == "DELETE":
                    server.jobs.pop(name)
                    return self._reply(200, {"kind": "Status", "status": "Success"})
                return self._reply(405, {"kind": "Status", "code": 405})

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.httpd.shutdown()


def make_worker(data_dir: Path, api: FakeApiServer) -> tuple[Worker, JobStore]:
    settings = FinetuneSettings(runner="kubernetes", kube_api_url=api.url, kube_token=TOKEN, kube_poll_s=0.1,
                                kube_namespace="loopline-training", kube_image="registry.local/loopline/finetune:1.2")
    store = JobStore(data_dir / "state" / "finetune.db")
    worker = Worker(settings=settings, store=store, registry=Registry(data_dir / "registry"),
                    events=open_event_store(EventsSettings(store="sqlite"), data_dir / "state"), data_dir=data_dir,
                    state_dir=data_dir / "state")
    return worker, store


def wait_until(cond: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def submit(store: JobStore, worker: Worker, request: dict[str, Any]) -> str:
    job = store.create(model=request["model"], task="qa", runner="kubernetes", request=request)
    worker.notify()
    return job.id


REQUEST = {"model": "qa-extractive", "dataset": "samples/qa.json", "use_feedback": False, "promote": True,
           "hyperparameters": {"min_steps": 40}, "trigger": "test"}


def test_a_job_runs_as_a_kubernetes_job_and_its_outcome_is_recorded(data_dir: Path, api: FakeApiServer) -> None:
    worker, store = make_worker(data_dir, api)
    worker.start()
    try:
        job_id = submit(store, worker, REQUEST)
        wait_until(lambda: api.jobs)
        name, spec = next(iter(api.jobs.items()))
        assert name == f"loopline-{job_id}"
        container = spec["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "registry.local/loopline/finetune:1.2"
        assert container["command"] == ["loopline", "finetune", "execute", job_id]
        assert spec["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "loopline-data"
        assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
        assert store.get(job_id).status == "running"
        # play the pod: the same image runs `loopline finetune execute <job>` on the shared volume
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
        env.update({"LOOPLINE_DATA_DIR": str(data_dir), "LOOPLINE_FINETUNE_NUM_THREADS": "1",
                    "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
        pod = subprocess.run([sys.executable, "-m", "services.cli", "finetune", "execute", job_id], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
        assert pod.returncode == 0, pod.stdout[-2000:] + pod.stderr[-2000:]
        wait_until(lambda: store.get(job_id).progress.total == 40)  # progress read from the pod's file
        api.status[name] = {"succeeded": 1}
        wait_until(lambda: store.get(job_id).status != "running")
        job = store.get(job_id)
        assert job.status == "succeeded" and job.alias == "canary", job
        assert Registry(data_dir / "registry").resolve("qa-extractive", "canary") == job.version
        assert all(r["auth"] == f"Bearer {TOKEN}" for r in api.requests)
        assert {(r["method"], r["path"].endswith("/status")) for r in api.requests
                if "/jobs" in r["path"]} == {("POST", False), ("GET", True)}
    finally:
        worker.stop()


def test_a_failed_kubernetes_job_fails_with_its_reason(data_dir: Path, api: FakeApiServer) -> None:
    worker, store = make_worker(data_dir, api)
    worker.start()
    try:
        job_id = submit(store, worker, REQUEST)
        wait_until(lambda: api.jobs)
        api.status[f"loopline-{job_id}"] = {"failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline"}]}
        wait_until(lambda: store.get(job_id).status != "running")
        job = store.get(job_id)
        assert job.status == "failed" and "DeadlineExceeded" in (job.error or "")
    finally:
        worker.stop()


def test_a_pod_that_cannot_pull_its_image_fails_the_job_fast(data_dir: Path, api: FakeApiServer) -> None:
    """ImagePullBackOff never ends by itself: the job fails with the reason, the Job is deleted, and
    the worker is free for the next job (it used to wait the 6 h deadline)."""
    settings = FinetuneSettings(runner="kubernetes", kube_api_url=api.url, kube_token=TOKEN, kube_poll_s=0.05,
                                kube_start_timeout_s=0.3, kube_namespace="loopline-training",
                                kube_image="registry.local/loopline/finetune-full:missing")
    store = JobStore(data_dir / "state" / "finetune.db")
    worker = Worker(settings=settings, store=store, registry=Registry(data_dir / "registry"),
                    events=open_event_store(EventsSettings(store="sqlite"), data_dir / "state"), data_dir=data_dir,
                    state_dir=data_dir / "state")
    worker.start()
    try:
        job_id = submit(store, worker, REQUEST)
        wait_until(lambda: api.jobs)
        name = f"loopline-{job_id}"
        api.waiting[name] = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
        wait_until(lambda: store.get(job_id).status != "running", timeout_s=20)
        job = store.get(job_id)
        assert job.status == "failed" and "ImagePullBackOff" in (job.error or "") and "finetune-full:missing" in job.error
        assert name not in api.jobs, "the stuck Job is deleted"
        assert any(r["path"].endswith("/pods") and "job-name" in r["query"] for r in api.requests)
    finally:
        worker.stop()


def test_cancel_deletes_the_kubernetes_job(data_dir: Path, api: FakeApiServer) -> None:
    worker, store = make_worker(data_dir, api)
    worker.start()
    try:
        job_id = submit(store, worker, REQUEST)
        wait_until(lambda: api.jobs)
        store.request_cancel(job_id)
        worker.cancel(job_id)
        wait_until(lambda: store.get(job_id).status == "cancelled")
        deletes = [r for r in api.requests if r["method"] == "DELETE"]
        assert deletes and deletes[0]["path"].endswith(f"/jobs/loopline-{job_id}")
        assert "propagationPolicy=Background" in deletes[0]["query"]
        assert not api.jobs
    finally:
        worker.stop()


def test_an_api_server_refusal_fails_the_job_with_the_status(data_dir: Path, api: FakeApiServer) -> None:
    api.fail_create = 403
    worker, store = make_worker(data_dir, api)
    worker.start()
    try:
        job_id = submit(store, worker, REQUEST)
        wait_until(lambda: store.get(job_id).status != "running" and store.get(job_id).status != "queued")
        assert "403" in (store.get(job_id).error or "")
    finally:
        worker.stop()
