"""The gateway in front of real services: contract routes, seeds' curl calls, feedback, admin, breaker."""

from __future__ import annotations

import base64
import io
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.common.registry import Registry
from tests.fixtures import copy_as_new_version, inference_rows
from tests.integration.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def stack(gateway_stack):
    """The stack this module shares with test_gateway_oip.py (tests/integration/conftest.py)."""
    return gateway_stack


def events_db(stack) -> sqlite3.Connection:
    return sqlite3.connect(stack.data / "state" / "events.db")


def test_seed_vqa_predict_curl_shape(stack) -> None:
    r = httpx.post(stack.url + "/predict", json={"image_path": "samples/images/red_square.png",
                                                 "question": "what is this item?"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"answer", "event", "latency_seconds", "quality_score", "question"}
    assert body["event"] == "inference" and body["question"] == "what is this item?"
    assert 0 <= body["quality_score"] <= 1 and body["latency_seconds"] > 0


def test_seed_qa_answer_curl_shape(stack) -> None:
    context = ("France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower "
               "and Louvre Museum.")
    r = httpx.post(stack.url + "/answer", json={"question": "What is the capital of France?", "context": context})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"answer", "confidence", "start_pos", "end_pos"}
    assert context[body["start_pos"]:body["end_pos"]] == body["answer"]


def test_seed_stylize_and_feedback_form(stack) -> None:
    image = (stack.data / "samples" / "images" / "blue_circle.jpg").read_bytes()
    r = httpx.post(stack.url + "/stylize", files={"content_image": ("c.jpg", image, "image/jpeg")},
                   data={"model": "model1"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    out = Image.open(io.BytesIO(base64.b64decode(body["stylized_image"])))
    assert out.size == (160, 120) and body["model"] == "style-mosaic"
    fb = httpx.post(stack.url + "/feedback", json={"feedback": "bad", "model": "model1",
                                                    "content_image_filename": "c.jpg",
                                                    "output_image_filename": body["output_image_filename"],
                                                    "timestamp": "2026-11-25T10:00:00Z"})
    assert fb.status_code == 201, fb.text
    row = events_db(stack).execute("SELECT rating, request_id FROM feedback WHERE feedback_id = ?",
                                   (fb.json()["feedback_id"],)).fetchone()
    assert row == ("bad", body["request_id"])
    unknown = httpx.post(stack.url + "/feedback", json={"feedback": "good", "output_image_filename": "nope.png"})
    assert unknown.status_code == 404
    assert httpx.post(stack.url + "/stylize", files={"content_image": ("c.jpg", image, "image/jpeg")},
                      data={"model": "model9"}).status_code == 404


def test_contract_routes_and_inference_events(stack) -> None:
    image = (stack.data / "samples" / "images" / "green_triangle.png").read_bytes()
    v = httpx.post(stack.url + "/v1/vqa", files={"image": ("g.png", image, "image/png")},
                   data={"question": "what shape?"}, timeout=60)
    assert v.status_code == 200, v.text
    assert set(v.json()) == {"answer", "confidence", "model", "latency_ms", "request_id"}
    j = httpx.post(stack.url + "/v1/vqa", json={"image_b64": base64.b64encode(image).decode(), "question": "what?"})
    q = httpx.post(stack.url + "/v1/qa", json={"question": "Who?", "context": "Ada wrote it."})
    s = httpx.post(stack.url + "/v1/style", json={"style": "sketch", "image_path": "samples/images/red_square.png"},
                   timeout=60)
    assert j.status_code == q.status_code == s.status_code == 200
    assert set(q.json()) == {"answer", "confidence", "start", "end", "model", "latency_ms", "request_id"}
    assert s.json()["model"]["name"] == "style-sketch"
    rows = inference_rows(stack.data / "state" / "events.db", [r.json()["request_id"] for r in (v, q, s)],
                          "task, model, version, status, latency_ms, inputs")
    for resp, task in ((v, "vqa"), (q, "qa"), (s, "style")):
        task_, model, version, status, latency, inputs = rows[resp.json()["request_id"]]
        assert (task_, status, version) == (task, 200, 1) and latency > 0
    assert "state/uploads/" in rows[v.json()["request_id"]][5], "uploaded images are kept for learning"
    styles = httpx.get(stack.url + "/v1/styles").json()["styles"]
    assert {s["style"] for s in styles} == {"mosaic", "sketch"}


def test_bad_requests_are_4xx_and_recorded(stack) -> None:
    cases = [
        (httpx.post, "/v1/qa", {"json": {"question": "q"}}, 422),
        (httpx.post, "/v1/vqa", {"json": {"question": "q", "image_path": "../../etc/passwd"}}, 400),
        (httpx.post, "/v1/vqa", {"json": {"question": "q"}}, 422),
        (httpx.post, "/v1/style", {"json": {"style": "nope", "image_path": "samples/images/red_square.png"}}, 404),
        (httpx.post, "/v1/vqa", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
        (httpx.post, "/v1/qa", {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, 400),
        (httpx.post, "/v1/vqa", {"content": b"{" * 10, "headers": {"content-type": "application/json"}}, 422),
        (httpx.post, "/v1/qa", {"json": {"question": "q", "context": "c"}, "headers": {"X-Model-Version": "9"}}, 404),
        (httpx.get, "/v1/metrics/summary?window=forever", {}, 422),
    ]
    for method, path, kwargs, status in cases:
        r = method(stack.url + path, timeout=30, **kwargs)
        assert r.status_code == status, (path, kwargs, r.text)
        assert r.json()["error"]["message"]
    big = httpx.post(stack.url + "/v1/qa", content=b"x" * (16 * 1024 * 1024),
                     headers={"content-type": "application/json"}, timeout=60)
    assert big.status_code == 413


def test_feedback_needs_a_known_request_and_is_stored(stack) -> None:
    q = httpx.post(stack.url + "/v1/qa", json={"question": "Who?", "context": "Ada wrote it."}).json()
    assert httpx.post(stack.url + "/v1/feedback", json={"request_id": "unknown", "rating": "bad"}).status_code == 404
    assert httpx.post(stack.url + "/v1/feedback", json={"request_id": q["request_id"], "rating": "meh"}).status_code == 422
    r = httpx.post(stack.url + "/v1/feedback", json={"request_id": q["request_id"], "rating": "bad", "correction": "Ada"})
    assert r.status_code == 201
    row = events_db(stack).execute("SELECT rating, correction, task, version FROM feedback WHERE feedback_id = ?",
                                   (r.json()["feedback_id"],)).fetchone()
    assert row == ("bad", "Ada", "qa", 1)
    summary = httpx.get(stack.url + "/v1/metrics/summary", params={"task": "qa", "window": "1h"}).json()["models"]
    qa_row = next(m for m in summary if m["model"] == "qa-extractive" and m["version"] == 1)
    assert qa_row["count"] >= 1 and qa_row["bad_feedback_rate"] > 0 and qa_row["latency_p95_ms"] >= qa_row["latency_p50_ms"]


def test_feedback_survives_kill_9_of_the_gateway(stack) -> None:
    q = httpx.post(stack.url + "/v1/qa", json={"question": "Who?", "context": "Ada wrote it."}).json()
    r = httpx.post(stack.url + "/v1/feedback", json={"request_id": q["request_id"], "rating": "good"})
    assert r.status_code == 201
    stack.gateway.kill()  # SIGKILL right after the 201
    stack.restart_gateway()
    row = events_db(stack).execute("SELECT rating FROM feedback WHERE feedback_id = ?",
                                   (r.json()["feedback_id"],)).fetchone()
    assert row == ("good",)
    again = httpx.post(stack.url + "/v1/feedback", json={"request_id": q["request_id"], "rating": "bad"})
    assert again.status_code == 201, "the request itself survived too"


def test_admin_routes_need_the_token(stack) -> None:
    for path, body in (("/v1/models/qa-extractive/promote", {"version": 1}), ("/v1/models/qa-extractive/rollback", {}),
                       ("/v1/finetune", {"model": "qa-extractive"})):
        assert httpx.post(stack.url + path, json=body).status_code == 401
        wrong = httpx.post(stack.url + path, json=body, headers={"Authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]["message"]
    assert httpx.get(stack.url + "/v1/finetune/abc").status_code == 401
    models = httpx.get(stack.url + "/v1/models").json()["models"]
    assert {m["name"] for m in models} >= {"vqa-blip", "qa-extractive", "style-mosaic"}


def test_canary_via_api_sticky_and_explicit_version(stack) -> None:
    registry = Registry(stack.data / "registry")
    v2 = copy_as_new_version(registry, "qa-extractive", registry.resolve("qa-extractive"), seed=3).version
    r = httpx.post(stack.url + "/v1/models/qa-extractive/promote", headers=AUTH,
                   json={"version": v2, "alias": "canary", "weight": 0.5})
    assert r.status_code == 200 and r.json()["aliases"]["canary"] == v2
    body = {"question": "Who?", "context": "Ada wrote it."}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the backend loads the canary in the background
        got = httpx.post(stack.url + "/v1/qa", json=body, headers={"X-Model-Version": str(v2)})
        if got.status_code == 200:
            break
        time.sleep(0.3)
    assert got.json()["model"]["version"] == v2
    versions = {}
    for i in range(40):
        client = f"user-{i}"
        seen = {httpx.post(stack.url + "/v1/qa", json=body, headers={"X-Client-Id": client}).json()["model"]["version"]
                for _ in range(3)}
        assert len(seen) == 1, "a client sticks to one side of the split"
        versions[client] = seen.pop()
    share = sum(v == v2 for v in versions.values()) / len(versions)
    assert 0.2 <= share <= 0.8
    registry.clear_canary("qa-extractive")
    rb = httpx.post(stack.url + "/v1/models/qa-extractive/rollback", headers=AUTH)
    assert rb.status_code == 409, "v1 never had a predecessor"


def test_breaker_opens_fast_and_closes_when_backend_returns(stack) -> None:
    qa = stack.backends["qa"]
    body = {"question": "Who?", "context": "Ada wrote it."}
    qa.kill()
    statuses, durations = [], []
    for _ in range(8):
        t0 = time.perf_counter()
        r = httpx.post(stack.url + "/v1/qa", json=body, timeout=30)
        durations.append(time.perf_counter() - t0)
        statuses.append(r.status_code)
    assert set(statuses) == {503}
    assert "Retry-After" in r.headers and max(durations[3:]) < 0.5, "open breaker answers at once"
    ready = httpx.get(stack.url + "/readyz", params={"all": "true"})
    assert ready.status_code == 503 and "qa" in ready.json()["not_ready"]
    own = httpx.get(stack.url + "/readyz")  # what the Kubernetes probe asks: the gateway itself still serves
    assert own.status_code == 200 and own.json()["backends"]["qa"] != "ready", own.text
    assert own.json()["backends"]["vqa"] == "ready"
    qa.start().wait_ready()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = httpx.post(stack.url + "/v1/qa", json=body, timeout=30)
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200, "the breaker closed again"
    assert httpx.get(stack.url + "/readyz", params={"all": "true"}).status_code == 200


def test_gateway_metrics_docs_and_ui(stack) -> None:
    assert "loopline_gateway_requests_total" in httpx.get(stack.url + "/metrics").text
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    for path in ("/v1/vqa", "/v1/qa", "/v1/style", "/v1/feedback", "/predict", "/answer", "/stylize", "/feedback",
                 "/v1/models/{model}/promote", "/v1/metrics/summary"):
        assert path in paths
    ui = httpx.get(stack.url + "/")
    assert ui.status_code == 200 and "text/html" in ui.headers["content-type"]
    assert "default-src 'self'" in ui.headers["content-security-policy"]
    assert ui.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in httpx.options(
        stack.url + "/v1/qa", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}).headers


def test_no_secret_in_logs_or_events(stack) -> None:
    httpx.post(stack.url + "/v1/models/qa-extractive/promote", headers=AUTH, json={"version": 1})
    logs = "".join(p.read_text(errors="replace") for p in Path(stack.logs).glob("*.log"))
    assert ADMIN_TOKEN not in logs
    dump = "\n".join(events_db(stack).iterdump())
    assert ADMIN_TOKEN not in dump
