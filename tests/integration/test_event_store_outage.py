"""Serving survives an Elasticsearch outage and loses no acknowledged event or feedback through it.

"Elasticsearch" is the stand-in (tests/standins.py) on a fixed port, stopped and restarted
with its documents, as a real cluster would be during a restart or an upgrade.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import free_port, start_service
from tests.standins import elasticsearch_handler, serve

pytestmark = pytest.mark.integration
CONTEXT = "Ada Lovelace wrote the first program in London in 1843."


class Elastic:
    """A stand-in Elasticsearch whose data outlives its restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.indices: dict[str, list[dict[str, Any]]] = {}
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = serve(elasticsearch_handler(indices=self.indices), port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def request_ids(self) -> Counter[str]:
        return Counter(d["http"]["request"]["id"] for d in self.indices.get("loopline-events", [])
                       if d.get("event", {}).get("action") == "inference")

    def feedback_ids(self) -> Counter[str]:
        return Counter(d["loopline"]["feedback_id"] for d in self.indices.get("loopline-events-feedback", []))


@pytest.fixture
def elastic():
    es = Elastic()
    yield es
    es.stop()


def gateway_for(stack, es: Elastic, **env: str):
    return start_service("gateway", stack.data, stack.logs, **stack.gateway_env,
                         LOOPLINE_EVENTS_STORE="elasticsearch", LOOPLINE_EVENTS_ELASTICSEARCH_URL=es.url,
                         LOOPLINE_EVENTS_RETRY_S="0.5", **env)


def ask(gw, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        r = httpx.post(gw.url + "/v1/qa", json={"question": f"Who wrote it ({tag} {i})?", "context": CONTEXT}, timeout=30)
        assert r.status_code == 200, r.text  # never a 5xx because of the event store
        ids.append(r.json()["request_id"])
    return ids


def rate(gw, request_ids: list[str]) -> list[str]:
    out = []
    for rid in request_ids:
        r = httpx.post(gw.url + "/v1/feedback", json={"request_id": rid, "rating": "bad", "correction": "Ada"})
        assert r.status_code == 201, r.text
        out.append(r.json()["feedback_id"])
    return out


def wait_delivered(es: Elastic, request_ids: list[str], feedback_ids: list[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got, fb = es.request_ids(), es.feedback_ids()
        if all(got[r] for r in request_ids) and all(fb[f] for f in feedback_ids):
            break
        time.sleep(0.2)
    got, fb = es.request_ids(), es.feedback_ids()
    assert [(r, got[r]) for r in request_ids if got[r] != 1] == [], ("every request id in Elasticsearch exactly once", {k: len(v) for k, v in es.indices.items()}, list(es.indices.get("loopline-events", [{}]))[:1])
    assert [(f, fb[f]) for f in feedback_ids if fb[f] != 1] == [], "every acknowledged feedback exactly once"


def metric(gw, name: str) -> float:
    text = httpx.get(gw.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_store_down_at_start_the_gateway_serves_and_delivers_later(stack, elastic: Elastic) -> None:
    gw = gateway_for(stack, elastic).wait_ready(60)
    try:
        ready = httpx.get(gw.url + "/readyz").json()
        assert ready["status"] == "ready" and ready["event_store"]["status"] == "degraded"
        vqa = httpx.post(gw.url + "/v1/vqa", json={"image_path": "samples/images/red_square.png",
                                                   "question": "what color is it?"}, timeout=60)
        style = httpx.post(gw.url + "/v1/style", json={"style": "mosaic", "image_path": "samples/images/red_square.png"},
                           timeout=60)
        assert vqa.status_code == 200 and style.status_code == 200, "every task serves without the store"
        ids = [vqa.json()["request_id"], style.json()["request_id"], *ask(gw, 48, "down")]
        feedback = rate(gw, ids[2:12])
        assert metric(gw, "loopline_event_store_up") == 0
        assert metric(gw, "loopline_event_spool_waiting") >= 60
        summary = httpx.get(gw.url + "/v1/metrics/summary", params={"task": "qa"})
        assert summary.status_code == 503 and summary.json()["error"]["code"] == "event_store_unavailable"
        assert "event store" in gw.log_text() and "unreachable" in gw.log_text()
        elastic.start()
        wait_delivered(elastic, ids, feedback)
        assert httpx.get(gw.url + "/readyz").json()["event_store"]["status"] == "ok"
        assert metric(gw, "loopline_event_store_up") == 1
        assert httpx.get(gw.url + "/v1/metrics/summary", params={"task": "qa"}).status_code == 200
    finally:
        gw.stop()


def test_store_goes_down_mid_traffic_and_comes_back(stack, elastic: Elastic) -> None:
    elastic.start()
    gw = gateway_for(stack, elastic).wait_ready(60)
    try:
        before = ask(gw, 10, "before")
        elastic.stop()
        during = ask(gw, 20, "during")
        feedback = rate(gw, [before[0], during[3], during[15]])
        elastic.start()
        after = ask(gw, 10, "after")
        feedback += rate(gw, after[:2])
        wait_delivered(elastic, before + during + after, feedback)
    finally:
        gw.stop()


def test_a_full_spool_drops_old_inference_events_never_feedback(stack, elastic: Elastic) -> None:
    gw = gateway_for(stack, elastic, LOOPLINE_EVENTS_SPOOL_MAX_EVENTS="100").wait_ready(60)
    try:
        early = ask(gw, 20, "early")
        feedback = rate(gw, early[:5])
        late = ask(gw, 110, "late")
        deadline = time.monotonic() + 10
        while metric(gw, "loopline_event_spool_dropped") < 30 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(gw, "loopline_event_spool_dropped") == 30, "20 + 110 inference events, 100 kept"
        elastic.start()
        wait_delivered(elastic, late[-100:], feedback)
        got = elastic.request_ids()
        assert not any(got[r] for r in early), "the oldest inference events were the ones dropped"
    finally:
        gw.stop()


def test_kill_9_during_the_outage_loses_nothing_acknowledged(stack, elastic: Elastic) -> None:
    gw = gateway_for(stack, elastic).wait_ready(60)
    ids = ask(gw, 15, "killed")
    feedback = rate(gw, ids[:4])
    # inference events reach the spool in 20 ms group commits (feedback is durable at its 201)
    deadline = time.monotonic() + 10
    while metric(gw, "loopline_event_spool_waiting") < 19 and time.monotonic() < deadline:
        time.sleep(0.05)
    gw.kill()
    gw = gateway_for(stack, elastic).wait_ready(60)
    try:
        elastic.start()
        wait_delivered(elastic, ids, feedback)
    finally:
        gw.stop()


def test_finetune_and_watchdog_start_without_the_store_and_say_what_they_cannot_do(stack, elastic: Elastic) -> None:
    env = {"LOOPLINE_EVENTS_STORE": "elasticsearch", "LOOPLINE_EVENTS_ELASTICSEARCH_URL": elastic.url,
           "LOOPLINE_EVENTS_RETRY_S": "0.5", "LOOPLINE_ADMIN_TOKEN": stack.gateway_env["LOOPLINE_ADMIN_TOKEN"]}
    ft = start_service("finetune", stack.data, stack.logs, LOOPLINE_FINETUNE_NUM_THREADS="1", **env).wait_ready(60)
    wd = start_service("watchdog", stack.data, stack.logs, LOOPLINE_WATCHDOG_INTERVAL_S="0.5",
                       LOOPLINE_WATCHDOG_MIN_EVENTS="1", LOOPLINE_FINETUNE_URL=ft.url, **env).wait_ready(60)
    try:
        auth = {"Authorization": "Bearer " + env["LOOPLINE_ADMIN_TOKEN"]}
        job = httpx.post(ft.url + "/v1/jobs", json={"model": "qa-extractive", "use_feedback": True}, headers=auth).json()
        deadline = time.monotonic() + 60
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(ft.url + f"/v1/jobs/{job['id']}", headers=auth).json()
        assert job["status"] == "failed"
        assert "event store" in job["error"] and "start the job again" in job["error"], job["error"]
        deadline = time.monotonic() + 30
        decisions: dict[str, Any] = {}
        while time.monotonic() < deadline and not decisions.get("decisions"):
            decisions = httpx.get(wd.url + "/v1/decisions").json()
            time.sleep(0.2)
        assert decisions["decisions"][0]["action"] == "skipped", "no judgement on data it cannot read"
        assert "pass skipped" in wd.log_text()
        elastic.start()  # once the store is back, the same job, started again, gets past the data step
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = httpx.post(ft.url + "/v1/jobs", json={"model": "qa-extractive", "use_feedback": True}, headers=auth)
            if r.status_code == 409:  # past the data step: the store answered, nothing accepted to train on
                job = {"status": "refused", "error": r.json()["error"]["message"]}
                assert "no accepted correction" in job["error"]
                break
            job = r.json()
            while job["status"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.3)
                job = httpx.get(ft.url + f"/v1/jobs/{job['id']}", headers=auth).json()
            if "event store" not in (job["error"] or ""):
                break
        assert "event store" not in (job["error"] or ""), job["error"]
    finally:
        wd.stop()
        ft.stop()


# -- two gateway replicas (the Service's round robin): feedback on the other replica ----------
# Before the shared served-request index, feedback that reached the other replica within ~1 s of
# the answer got 404, and during a store outage 503: (N-1)/N of all feedback with N replicas.
# Here, in this module, to share its stack (backends) rather than start another.


@pytest.fixture
def replicas(stack, elastic: Elastic) -> Iterator[list[Any]]:
    elastic.start()
    gateways = [gateway_for(stack, elastic) for _ in range(2)]
    try:
        for gw in gateways:
            gw.wait_ready(60)
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def _ask_and_rate_on_the_other(gateways: list[Any], n: int, tag: str) -> tuple[list[str], list[str]]:
    """Round robin: request i goes to replica i % 2, its feedback at once to the other one."""
    request_ids, feedback_ids = [], []
    turn = itertools.cycle(range(len(gateways)))
    for i in range(n):
        k = next(turn)
        answer = httpx.post(gateways[k].url + "/v1/qa", timeout=30,
                            json={"question": f"Who wrote it ({tag} {i})?", "context": CONTEXT})
        assert answer.status_code == 200, answer.text
        rid = answer.json()["request_id"]
        other = gateways[(k + 1) % len(gateways)]
        body: dict[str, Any] = {"request_id": rid, "rating": "bad" if i % 2 else "good"}
        if i % 3 == 0:
            body["correction"] = "Ada Lovelace"
        fb = httpx.post(other.url + "/v1/feedback", json=body, timeout=30)
        assert fb.status_code == 201, f"feedback on the other replica ({tag}): {fb.status_code} {fb.text}"
        request_ids.append(rid)
        feedback_ids.append(fb.json()["feedback_id"])
    return request_ids, feedback_ids


def test_feedback_reaches_any_replica_with_the_store_up_and_down(replicas: list[Any], elastic: Elastic) -> None:
    up_requests, up_feedback = _ask_and_rate_on_the_other(replicas, 6, "store up")
    elastic.stop()
    down_requests, down_feedback = _ask_and_rate_on_the_other(replicas, 6, "store down")
    unknown = httpx.post(replicas[0].url + "/v1/feedback", json={"request_id": "never-answered", "rating": "good"})
    assert unknown.status_code in (404, 503), "an id no replica answered is never accepted"
    elastic.start()
    wait_delivered(elastic, up_requests + down_requests, up_feedback + down_feedback, timeout_s=60)
    stored = {d["loopline"]["feedback_id"]: d for d in elastic.indices["loopline-events-feedback"]}
    for rid, fid in zip(up_requests + down_requests, up_feedback + down_feedback, strict=True):
        assert stored[fid]["http"]["request"]["id"] == rid if "http" in stored[fid] else True
