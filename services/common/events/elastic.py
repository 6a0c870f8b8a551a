"""Elasticsearch event store (production), with the official ``elasticsearch`` client.

At start it installs an ILM policy and two index templates (ECS mappings) where its user may
(embedded, compose); in production the Elasticsearch security Job installs them as the superuser
(``setup_requests``, rendered into k8s/elk/elasticsearch-security.yaml) and the services' roles
hold no template or ILM rights, so a 403 there is one warning, not a failure. Inference and
decision events go to the data stream ``<index>`` through buffered bulk writes (flushed
every second, retried with backoff); feedback goes to ``<index>-feedback`` one document at
a time with ``refresh=wait_for``, acknowledged by Elasticsearch before the gateway's 201.
The summary is computed by aggregations in Elasticsearch, not by pulling raw rows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from tenacity import retry, stop_after_attempt, wait_exponential

from .base import EventStore, FeedbackRecord, InferenceEvent, sender_counts

log = logging.getLogger("loopline.events.elastic")
# the client logs every retry with a stack trace; while the cluster is down that floods the log,
# and the resilient store already says once that it is down and when it is back
logging.getLogger("elastic_transport").setLevel(logging.ERROR)
RECENT_REQUESTS = 20_000


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


ECS_MAPPINGS: dict[str, Any] = {
    "dynamic": "false",
    "properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"kind": {"type": "keyword"}, "action": {"type": "keyword"},
                                 "outcome": {"type": "keyword"}, "duration": {"type": "long"},
                                 "dataset": {"type": "keyword"}}},
        "http": {"properties": {"request": {"properties": {"id": {"type": "keyword"}}},
                                "response": {"properties": {"status_code": {"type": "integer"}}}}},
        "url": {"properties": {"path": {"type": "keyword"}}},
        "service": {"properties": {"name": {"type": "keyword"}}},
        "error": {"properties": {"code": {"type": "keyword"}}},
        "client": {"properties": {"user": {"properties": {"id": {"type": "keyword"}}}}},
        "loopline": {"properties": {
            "task": {"type": "keyword"}, "model": {"type": "keyword"}, "version": {"type": "integer"},
            "latency_ms": {"type": "float"}, "confidence": {"type": "float"}, "rating": {"type": "keyword"},
            "feedback_id": {"type": "keyword"}, "correction": {"type": "text"}, "comment": {"type": "text"},
            "sender": {"type": "keyword"}, "sender_role": {"type": "keyword"}, "trust": {"type": "keyword"},
            "kind": {"type": "keyword"}, "inputs": {"type": "object", "enabled": False},
            "output": {"type": "object", "enabled": False}, "doc": {"type": "object", "enabled": False}}},
    },
}

ILM_POLICY: dict[str, Any] = {
    "phases": {
        "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "25gb"}}},
        "delete": {"min_age": "30d", "actions": {"delete": {}}},
    }
}


def inference_doc(event: InferenceEvent) -> dict[str, Any]:
    """One inference event as an ECS document."""
    return {
        "@timestamp": iso(event.ts), "service": {"name": "loopline-gateway"},
        "event": {"kind": "event", "action": "inference", "dataset": "loopline.inference",
                  "outcome": "success" if event.status < 400 else "failure",
                  "duration": int(event.latency_ms * 1e6)},
        "http": {"request": {"id": event.request_id}, "response": {"status_code": event.status}},
        "url": {"path": event.route}, "error": {"code": event.error_code},
        "client": {"user": {"id": event.client_id}},
        "loopline": {"task": event.task, "model": event.model, "version": event.version,
                     "latency_ms": event.latency_ms, "confidence": event.confidence,
                     "inputs": event.inputs, "output": event.output},
    }


def setup_requests(index: str) -> list[tuple[str, dict[str, Any]]]:
    """The PUTs that prepare Elasticsearch for the store: (path, body), policy first. The store
    sends them at start; the security Job sends the same ones (rendered from
    ansible/roles/elk/files/event-store-setup.json, kept equal by tests/deploy)."""
    policy = f"{index}-policy"
    return [
        (f"_ilm/policy/{policy}", {"policy": ILM_POLICY}),
        (f"_index_template/{index}", {
            "index_patterns": [index], "data_stream": {}, "priority": 200,
            "template": {"settings": {"index.lifecycle.name": policy}, "mappings": ECS_MAPPINGS}}),
        # feedback is one plain index written by id (not a data stream): a rollover policy without a
        # rollover alias stops ILM on it with an error, and deleting it after 30 days would throw
        # away the corrections training learns from, so it has no lifecycle policy (it stays small)
        (f"_index_template/{index}-feedback", {
            "index_patterns": [f"{index}-feedback"], "priority": 200, "template": {"mappings": ECS_MAPPINGS}}),
    ]


def setup_file_text(placeholder: str = "__INDEX__") -> str:
    """ansible/roles/elk/files/event-store-setup.json: ``setup_requests`` with the index name as
    a placeholder the role replaces with ``events_index``."""
    import json

    return json.dumps([{"path": path, "body": body} for path, body in setup_requests(placeholder)], indent=1) + "\n"


class ElasticEventStore(EventStore):
    def __init__(self, url: str, index: str = "loopline-events", username: str | None = None,
                 password: str | None = None, client: Any = None, flush_interval_s: float = 1.0,
                 bulk_size: int = 500) -> None:
        from elasticsearch import Elasticsearch

        self.index = index
        self.feedback_index = f"{index}-feedback"
        self.es = client or Elasticsearch(
            url, basic_auth=(username, password) if username and password else None, request_timeout=10,
            max_retries=3, retry_on_timeout=True, retry_on_status=(429, 502, 503, 504))
        self.flush_interval_s = flush_interval_s
        self.bulk_size = bulk_size
        self._buffer: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.install()
        self._flusher = threading.Thread(target=self._flush_loop, name="es-flush", daemon=True)
        self._flusher.start()

    # -- setup ------------------------------------------------------------------------
    def install(self) -> None:
        """Install the ILM policy and templates; a 403 (a role without template/ILM rights: the
        security Job installs them in production) is logged once and the rest is skipped."""
        from elasticsearch import AuthorizationException

        for path, body in setup_requests(self.index):
            kind, _, name = path.rpartition("/")
            try:
                if kind == "_ilm/policy":
                    self.es.ilm.put_lifecycle(name=name, **body)
                else:
                    self.es.indices.put_index_template(name=name, **body)
            except AuthorizationException as e:
                log.warning("not allowed to install the Elasticsearch ILM policy and index templates "
                            "(%s); carrying on, they are the security Job's to install", e.message)
                return

    # -- writes -----------------------------------------------------------------------
    def record_inference(self, event: InferenceEvent) -> None:
        doc = inference_doc(event)
        with self._lock:
            self._buffer.append((event.request_id, doc))
            self._recent[event.request_id] = doc
            while len(self._recent) > RECENT_REQUESTS:
                self._recent.popitem(last=False)
            full = len(self._buffer) >= self.bulk_size
        if full:
            self._wake.set()  # the flusher thread sends it; never block the caller on a bulk request

    def write_inference(self, events: list[InferenceEvent]) -> None:
        self._create([(e.request_id, inference_doc(e)) for e in events])

    def ping(self) -> None:
        self.es.info()

    def record_feedback(self, feedback: FeedbackRecord) -> str:
        f = feedback
        doc = {"@timestamp": iso(f.ts), "service": {"name": "loopline-gateway"},
               "event": {"kind": "event", "action": "feedback", "dataset": "loopline.feedback"},
               "http": {"request": {"id": f.request_id}},
               "loopline": {"feedback_id": f.feedback_id, "rating": f.rating, "correction": f.correction,
                            "comment": f.comment, "task": f.task, "model": f.model, "version": f.version,
                            "sender": f.sender, "sender_role": f.sender_role, "trust": f.trust}}
        self._index_durably(f.feedback_id, doc)
        return f.feedback_id

    @retry(stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.2, max=3), reraise=True)
    def _index_durably(self, doc_id: str, doc: dict[str, Any]) -> None:
        self.es.index(index=self.feedback_index, id=doc_id, document=doc, refresh="wait_for")

    def record_event(self, kind: str, doc: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or uuid.uuid4().hex
        ts = float(doc.get("ts", time.time()))
        self._create([(event_id, {"@timestamp": iso(ts), "service": {"name": "loopline"},
                                  "event": {"kind": "event", "action": kind, "dataset": "loopline.decision"},
                                  "loopline": {"kind": kind, "doc": {**doc, "event_id": event_id, "ts": ts}}})])
        return event_id

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            try:
                self._create(batch)
            except Exception:
                log.exception("bulk write of %d events failed; keeping them for the next flush", len(batch))
                with self._lock:
                    self._buffer[:0] = batch

    @retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def _create(self, docs: list[tuple[str, dict[str, Any]]]) -> None:
        """Bulk ``create`` with our ids (data streams accept only create): a document already there
        answers 409, which means a resend, not a failure."""
        from elasticsearch import helpers

        if not docs:
            return
        _, errors = helpers.bulk(self.es, ({"_op_type": "create", "_index": self.index, "_id": doc_id, "_source": d}
                                           for doc_id, d in docs), raise_on_error=False, stats_only=False)
        failed = [e for e in errors if next(iter(e.values())).get("status") != 409]  # type: ignore[union-attr]
        if failed:
            raise RuntimeError(f"Elasticsearch refused {len(failed)} of {len(docs)} documents: {failed[:1]}")

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._flusher.join(5)
        self.flush()

    # -- reads --------------------------------------------------------------------------
    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._recent.get(request_id)
        if doc is None:
            hits = self._search(self.index, {"bool": {"filter": [{"term": {"event.action": "inference"}},
                                                                  {"term": {"http.request.id": request_id}}]}}, 1)
            doc = hits[0] if hits else None
        return _flat_request(doc) if doc else None

    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None:
        hits = self._search(self.feedback_index, {"term": {"loopline.feedback_id": feedback_id}}, 1)
        return _flat_feedback(hits[0]) if hits else None

    def feedback(self, *, task: str | None = None, model: str | None = None, since: float | None = None,
                 rating: str | None = None, with_correction: bool = False, limit: int = 10_000) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = []
        for field, value in (("loopline.task", task), ("loopline.model", model), ("loopline.rating", rating)):
            if value is not None:
                filters.append({"term": {field: value}})
        if since is not None:
            filters.append({"range": {"@timestamp": {"gte": iso(since)}}})
        if with_correction:
            filters.append({"exists": {"field": "loopline.correction"}})
        rows = [_flat_feedback(h) for h in self._search(self.feedback_index, {"bool": {"filter": filters}},
                                                        min(limit, 10_000))]
        for row in rows:
            request = self.get_request(row["request_id"]) or {}
            row["inputs"], row["output"] = request.get("inputs", {}), request.get("output", {})
        return rows

    def inference_rows(self, *, since: float, task: str | None = None, model: str | None = None,
                       limit: int = 10_000) -> list[dict[str, Any]]:
        filters = [{"term": {"event.action": "inference"}}, *_window(since, task, model)]
        return [_flat_request(h) for h in self._search(self.index, {"bool": {"filter": filters}}, min(limit, 10_000))]

    def events(self, kind: str, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        self.flush()
        filters: list[dict[str, Any]] = [{"term": {"loopline.kind": kind}}]
        if since is not None:
            filters.append({"range": {"@timestamp": {"gte": iso(since)}}})
        return [{"kind": kind, **h.get("loopline", {}).get("doc", {})}
                for h in self._search(self.index, {"bool": {"filter": filters}}, limit)]

    def summary(self, *, window_s: float, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        self.flush()
        since = time.time() - window_s
        filters = [{"term": {"event.action": "inference"}}, *_window(since, task, model)]
        per_version = {
            "terms": {"field": "loopline.version", "size": 50},
            "aggs": {"errors": {"filter": {"range": {"http.response.status_code": {"gte": 400}}}},
                     "ok": {"filter": {"range": {"http.response.status_code": {"lt": 400}}},
                            "aggs": {"latency": {"percentiles": {"field": "loopline.latency_ms",
                                                                 "percents": [50, 95]}},
                                     "confidence": {"avg": {"field": "loopline.confidence"}}}}},
        }
        aggs = {"tasks": {"terms": {"field": "loopline.task", "size": 10}, "aggs": {
            "models": {"terms": {"field": "loopline.model", "size": 100}, "aggs": {"versions": per_version}}}}}
        resp = self.es.search(index=self.index, size=0, query={"bool": {"filter": filters}}, aggs=aggs)
        bad = self._feedback_rates(since, task, model)
        out = []
        for t in resp["aggregations"]["tasks"]["buckets"]:
            for m in t["models"]["buckets"]:
                for v in m["versions"]["buckets"]:
                    count = int(v["doc_count"])
                    pct = v["ok"]["latency"]["values"]
                    good_bad = bad.get((t["key"], m["key"], int(v["key"])), (0, 0, {}))
                    total_fb = good_bad[0] + good_bad[1]
                    out.append({
                        "task": t["key"], "model": m["key"], "version": int(v["key"]), "count": count,
                        "error_rate": round(v["errors"]["doc_count"] / count, 4) if count else 0.0,
                        "latency_p50_ms": _round(pct.get("50.0")), "latency_p95_ms": _round(pct.get("95.0")),
                        "mean_confidence": _round(v["ok"]["confidence"]["value"], 4),
                        "feedback_count": total_fb,
                        "bad_feedback_rate": round(good_bad[1] / total_fb, 4) if total_fb else None,
                        **sender_counts(good_bad[2])})
        return out

    def _feedback_rates(self, since: float, task: str | None,
                        model: str | None) -> dict[tuple[str, str, int], tuple[int, int, dict[str, list[int]]]]:
        filters = _window(since, task, model)
        bad_filter = {"bad": {"filter": {"term": {"loopline.rating": "bad"}}}}
        aggs = {"groups": {"multi_terms": {"terms": [{"field": "loopline.task"}, {"field": "loopline.model"},
                                                     {"field": "loopline.version"}], "size": 500},
                           "aggs": {**bad_filter, "senders": {"terms": {"field": "loopline.sender", "size": 1000,
                                                                         "missing": "unknown"},
                                                               "aggs": bad_filter}}}}
        resp = self.es.search(index=self.feedback_index, size=0, query={"bool": {"filter": filters}}, aggs=aggs,
                              ignore_unavailable=True)
        rates = {}
        for bucket in resp.get("aggregations", {}).get("groups", {}).get("buckets", []):
            t, m, v = bucket["key"]
            total, bad_count = int(bucket["doc_count"]), int(bucket["bad"]["doc_count"])
            senders = {str(b["key"]): [int(b["doc_count"]) - int(b["bad"]["doc_count"]), int(b["bad"]["doc_count"])]
                       for b in bucket.get("senders", {}).get("buckets", [])}
            rates[(str(t), str(m), int(v))] = (total - bad_count, bad_count, senders)
        return rates

    def _search(self, index: str, query: dict[str, Any], size: int) -> list[dict[str, Any]]:
        resp = self.es.search(index=index, query=query, size=size, sort=[{"@timestamp": "asc"}],
                              ignore_unavailable=True)
        return [h["_source"] for h in resp["hits"]["hits"]]


def _window(since: float, task: str | None, model: str | None) -> list[dict[str, Any]]:
    """The filters every windowed query shares: time, and optionally task and model."""
    filters: list[dict[str, Any]] = [{"range": {"@timestamp": {"gte": iso(since)}}}]
    if task:
        filters.append({"term": {"loopline.task": task}})
    if model:
        filters.append({"term": {"loopline.model": model}})
    return filters


def _round(value: float | None, digits: int = 3) -> float | None:
    return round(float(value), digits) if value is not None else None


def _flat_request(doc: dict[str, Any]) -> dict[str, Any]:
    ll = doc.get("loopline", {})
    return {"request_id": doc.get("http", {}).get("request", {}).get("id"),
            "ts": datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00")).timestamp(),
            "task": ll.get("task"), "model": ll.get("model"), "version": ll.get("version"),
            "latency_ms": ll.get("latency_ms"), "confidence": ll.get("confidence"),
            "status": doc.get("http", {}).get("response", {}).get("status_code"),
            "error_code": (doc.get("error") or {}).get("code"), "inputs": ll.get("inputs", {}),
            "output": ll.get("output", {})}


def _flat_feedback(doc: dict[str, Any]) -> dict[str, Any]:
    ll = doc.get("loopline", {})
    return {"feedback_id": ll.get("feedback_id"), "request_id": doc.get("http", {}).get("request", {}).get("id"),
            "ts": datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00")).timestamp(),
            "rating": ll.get("rating"), "correction": ll.get("correction"), "comment": ll.get("comment"),
            "task": ll.get("task"), "model": ll.get("model"), "version": ll.get("version"),
            "sender": ll.get("sender"), "sender_role": ll.get("sender_role") or "anonymous",
            "trust": ll.get("trust") or "pending"}


if __name__ == "__main__":  # regenerate the security Job's copy: python -m services.common.events.elastic
    import sys

    sys.stdout.write(setup_file_text())
