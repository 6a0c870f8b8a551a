"""A model that fails to load: readiness says which backend and model are not ready, never the
exception's text (that goes to the service's log, where operators look)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from services.common.registry import Registry
from tests.integration.conftest import ADMIN_TOKEN
from tests.servers import free_port, start_service

pytestmark = pytest.mark.integration
MARKER = "secret-internal-marker-9f3a"


def test_public_readyz_names_the_backend_not_the_exception(data_dir: Path, tmp_path: Path) -> None:
    registry = Registry(data_dir / "registry")

    def write_broken(out: Path) -> None:  # valid files, a model no library knows how to load
        (out / "config.json").write_text(json.dumps({"model_type": MARKER, "architectures": [MARKER]}))

    ref = registry.create_version("qa-broken", task="qa", framework="torch", write=write_broken)
    registry.promote("qa-broken", ref.version, "production", actor="test", reason="broken on purpose")
    qa = start_service("qa", data_dir, tmp_path).wait_ready(path="/healthz")
    gateway = None
    try:
        deadline = time.monotonic() + 120
        body: dict = {}
        while time.monotonic() < deadline:
            r = httpx.get(qa.url + "/readyz", timeout=5)
            body = r.json()
            if r.status_code == 503 and any("failed to load" in m for m in body.get("not_ready", [])):
                break
            time.sleep(0.3)
        assert "qa-broken v1: failed to load" in body["not_ready"], body
        assert MARKER not in json.dumps(body), "the service's readiness body carries no exception text"
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        gateway = start_service("gateway", data_dir, tmp_path, LOOPLINE_QA_URL=qa.url, LOOPLINE_VQA_URL=closed,
                                LOOPLINE_STYLE_URL=closed, LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN).wait_ready(path="/healthz")
        own = httpx.get(gateway.url + "/readyz", timeout=10)
        assert own.status_code == 200, "no backend ready, yet the gateway itself serves (UI, feedback, models)"
        assert own.json()["backends"]["vqa"] == "unreachable" and MARKER not in own.text
        r = httpx.get(gateway.url + "/readyz", params={"all": "true"}, timeout=10)
        assert r.status_code == 503
        public = r.json()
        assert "qa" in public["not_ready"] and "qa-broken" in public["not_ready"]["qa"]
        assert public["not_ready"]["vqa"] == "unreachable", "a backend that does not answer is named, no details"
        assert MARKER not in r.text and "Error" not in r.text and "Traceback" not in r.text
        assert MARKER in qa.log_text(), "the reason is in the service's log for operators"
        versions = httpx.get(qa.url + "/v1/versions", timeout=5).json()
        assert any(MARKER in reason for reason in versions["failed"].values()), "and on the internal versions route"
    finally:
        if gateway is not None:
            gateway.stop()
        qa.stop()
