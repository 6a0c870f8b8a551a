"""The Elasticsearch event store against a stand-in that checks what the official client sends.

No Elasticsearch server runs on these machines; the stand-in implements the documented
REST calls the store uses (ILM policy, index templates, _bulk, index with refresh, _search).
"""

from __future__ import annotations

import time

import httpx
import pytest

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.elastic import ElasticEventStore
from tests.servers import start_service
from tests.standins import elasticsearch_handler, serve

pytestmark = pytest.mark.integration

CANNED = {"loopline-events": {"tasks": {"buckets": [{"key": "qa", "doc_count": 3, "models": {"buckets": [
    {"key": "qa-extractive", "doc_count": 3, "versions": {"buckets": [
        {"key": 1, "doc_count": 3, "errors": {"doc_count": 1},
         "ok": {"doc_count": 2, "latency": {"values": {"50.0": 12.0, "95.0": 30.5}},
                "confidence": {"value": 0.61}}}]}}]}}]}},
    "loopline-events-feedback": {"groups": {"buckets": [
        {"key": ["qa", "qa-extractive", 1], "doc_count": 4, "bad": {"doc_count": 1},
         "senders": {"buckets": [{"key": "client:a", "doc_count": 3, "bad": {"doc_count": 0}},
                                 {"key": "client:b", "doc_count": 1, "bad": {"doc_count": 1}}]}}]}}}


@pytest.fixture
def es():
    standin = serve(elasticsearch_handler(fail_first_bulk=True, canned_aggs=CANNED))
    yield standin
    standin.stop()


def test_install_bulk_retry_feedback_and_summary(es) -> None:
    store = ElasticEventStore(es.url, flush_interval_s=60)
    (policy,) = es.matching("PUT", "/_ilm/policy/")
    assert policy.path == "/_ilm/policy/loopline-events-policy"
    assert "rollover" in policy.json()["policy"]["phases"]["hot"]["actions"]
    templates = {r.path: r.json() for r in es.matching("PUT", "/_index_template/")}
    events_tpl = templates["/_index_template/loopline-events"]
    assert events_tpl["data_stream"] == {} and events_tpl["index_patterns"] == ["loopline-events"]
    props = events_tpl["template"]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date" and props["http"]["properties"]["request"]
    assert events_tpl["template"]["settings"]["index.lifecycle.name"] == "loopline-events-policy"

    store.record_inference(InferenceEvent(request_id="r1", task="qa", model="qa-extractive", version=1,
                                          latency_ms=12.0, confidence=0.5, status=200, inputs={"question": "q"}))
    assert store.get_request("r1")["inputs"] == {"question": "q"}, "found before the bulk flush"
    store.flush()  # the stand-in answers the first _bulk with 503: the client retries
    bulks = es.matching("POST", "/_bulk") + es.matching("PUT", "/_bulk")
    assert len(bulks) >= 2
    last = bulks[-1]
    assert "x-ndjson" in last.headers["content-type"]
    action, doc = last.ndjson()
    assert action == {"create": {"_index": "loopline-events", "_id": "r1"}}, "the request id makes a resend a no-op"
    assert doc["http"]["request"]["id"] == "r1" and doc["event"]["action"] == "inference"
    assert doc["@timestamp"].endswith("Z") and doc["loopline"]["latency_ms"] == 12.0

    fid = store.record_feedback(FeedbackRecord(request_id="r1", rating="bad", correction="Paris", task="qa",
                                               model="qa-extractive", version=1))
    (put,) = [r for r in es.requests if r.path == f"/loopline-events-feedback/_doc/{fid}"]
    assert put.query["refresh"] == ["wait_for"], "feedback is acknowledged only once searchable"
    rows = store.feedback(with_correction=True)
    assert rows[0]["correction"] == "Paris" and rows[0]["inputs"] == {"question": "q"}

    summary = store.summary(window_s=3600, task="qa")
    assert summary == [{"task": "qa", "model": "qa-extractive", "version": 1, "count": 3, "error_rate": 0.3333,
                        "latency_p50_ms": 12.0, "latency_p95_ms": 30.5, "mean_confidence": 0.61,
                        "feedback_count": 4, "bad_feedback_rate": 0.25,
                        "feedback_senders": 2, "bad_feedback_senders": 1}]
    search = [r for r in es.matching("POST", "/loopline-events/_search") if "aggs" in r.json()][-1].json()
    assert search["size"] == 0 and "percentiles" in str(search["aggs"])
    assert {"term": {"loopline.task": "qa"}} in search["query"]["bool"]["filter"]
    store.close()


def test_gateway_writes_events_to_elasticsearch(es, stack) -> None:
    gw = start_service("gateway", stack.data, stack.logs, **stack.gateway_env,
                       LOOPLINE_EVENTS_STORE="elasticsearch", LOOPLINE_EVENTS_ELASTICSEARCH_URL=es.url,
                       LOOPLINE_EVENTS_ELASTICSEARCH_USERNAME="elastic",
                       LOOPLINE_EVENTS_ELASTICSEARCH_PASSWORD="es-secret-password-123").wait_ready()
    try:
        r = httpx.post(gw.url + "/v1/qa", json={"question": "Who?", "context": "Ada wrote it."}, timeout=30)
        assert r.status_code == 200
        fb = httpx.post(gw.url + "/v1/feedback", json={"request_id": r.json()["request_id"], "rating": "good"})
        assert fb.status_code == 201
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                r.json()["request_id"] in b.body.decode() for b in es.matching("POST", "/_bulk") + es.matching("PUT", "/_bulk")):
            time.sleep(0.2)
        sent = [b for b in es.matching("POST", "/_bulk") + es.matching("PUT", "/_bulk")
                if r.json()["request_id"] in b.body.decode()]
        assert sent, "the inference event reached Elasticsearch through _bulk"
        auth = sent[-1].headers["authorization"]
        assert auth.startswith("Basic "), "credentials come from settings"
        assert "es-secret-password-123" not in gw.log_text()
    finally:
        gw.stop()


def test_finetune_reads_the_corrections_the_gateway_stored_in_elasticsearch(es, stack) -> None:
    """One LOOPLINE_EVENTS_* configuration for gateway and fine-tune: a use_feedback job finds the feedback."""
    from tests.integration.conftest import ADMIN_TOKEN

    events_env = {"LOOPLINE_EVENTS_STORE": "elasticsearch", "LOOPLINE_EVENTS_ELASTICSEARCH_URL": es.url}
    gw = start_service("gateway", stack.data, stack.logs, **{**stack.gateway_env, **events_env}).wait_ready()
    ft = start_service("finetune", stack.data, stack.logs, LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN,
                       LOOPLINE_FINETUNE_NUM_THREADS="1", LOOPLINE_FINETUNE_MIN_STEPS="4",
                       LOOPLINE_FINETUNE_GATE_MIN_TRAIN_FIT="0", **events_env).wait_ready(60)
    try:
        corrected: list[str] = []
        request_ids: list[str] = []
        for i, (question, context, answer) in enumerate([
                ("Who wrote it?", "Ada wrote it in London.", "Ada"),
                ("Where was it written?", "Ada wrote it in London.", "London"),
                ("Who painted it?", "Bruno painted it in Rome.", "Bruno")]):
            r = httpx.post(gw.url + "/v1/qa", json={"question": question, "context": context}, timeout=30)
            assert r.status_code == 200, r.text
            # with the admin key: accepted at once (anonymous corrections wait for a quorum or a reviewer)
            fb = httpx.post(gw.url + "/v1/feedback", json={"request_id": r.json()["request_id"], "rating": "bad",
                                                             "correction": answer, "comment": f"fix {i}"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert fb.status_code == 201, fb.text
            corrected.append(fb.json()["feedback_id"])
            request_ids.append(r.json()["request_id"])
        # inference events reach Elasticsearch through buffered _bulk writes (the first one is refused
        # by the stand-in and retried): the job reads them from there, so let them land first
        reader = ElasticEventStore(es.url, flush_interval_s=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(reader.get_request(rid) for rid in request_ids):
            time.sleep(0.2)
        reader.close()
        with httpx.Client(base_url=ft.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as c:
            job = c.post("/v1/jobs", json={"model": "qa-extractive", "use_feedback": True, "promote": False}).json()
            deadline = time.monotonic() + 300
            while job["status"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.5)
                job = c.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] in ("succeeded", "rejected"), (job["status"], job["error"], job["data"])
        assert job["data"]["feedback"] == len(corrected), "every correction stored through the gateway was read"
        searched = [r for r in es.matching("POST", "/loopline-events-feedback/_search")]
        assert searched, "fine-tune read the feedback from Elasticsearch, not from a local SQLite file"
        assert not (stack.data / "state" / "events.db").exists() or all(
            fid not in (stack.data / "state" / "events.db").read_bytes().decode(errors="replace")
            for fid in corrected), "no correction went to SQLite"
    finally:
        ft.stop()
        gw.stop()
