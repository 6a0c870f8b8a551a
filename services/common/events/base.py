"""Event store interface. SQLite is the embedded default; Elasticsearch runs in production."""

from __future__ import annotations

import math
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, Field


class InferenceEvent(BaseModel):
    request_id: str
    ts: float = Field(default_factory=time.time)
    task: str
    model: str | None = None
    version: int | None = None
    latency_ms: float
    confidence: float | None = None
    status: int
    error_code: str | None = None
    client_id: str | None = None
    route: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, description="what the fine-tuner needs to learn from feedback")
    output: dict[str, Any] = Field(default_factory=dict, description="answer / span; never image bytes")


class FeedbackRecord(BaseModel):
    feedback_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    request_id: str
    ts: float = Field(default_factory=time.time)
    rating: str
    correction: str | None = None
    comment: str | None = None
    task: str | None = None
    model: str | None = None
    version: int | None = None
    sender: str | None = Field(None, description="key:<name> (an API key), client:<X-Client-Id> or addr:<source ip>")
    sender_role: str = Field("anonymous", description="anonymous | reviewer | admin")
    trust: str = Field("pending", description="trust state when received: accepted (reviewer/admin key) or pending")


class EventStore(ABC):
    """Inference events and feedback, plus free-form decision events (watchdog, jobs)."""

    @abstractmethod
    def record_inference(self, event: InferenceEvent) -> None:
        """Queue the event without blocking (the gateway calls this on its event loop);
        ``get_request`` finds it at once, a background writer makes it durable."""

    def write_inference(self, events: list[InferenceEvent]) -> None:
        """Write these events now (one batch), or raise. Idempotent by request id: a resend after a
        crash or a lost answer keeps one copy."""
        for event in events:
            self.record_inference(event)
        self.flush()

    def flush(self) -> None:
        """Make queued inference events durable now."""

    def ping(self) -> None:
        """Raise when the store cannot be reached."""

    def health(self) -> dict[str, Any]:
        """For readiness bodies: ``status`` ok or degraded, and how many events wait locally."""
        return {"status": "ok", "waiting": 0}

    @abstractmethod
    def get_request(self, request_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def record_feedback(self, feedback: FeedbackRecord) -> str:
        """Durable when this returns (the 201 is sent after); idempotent by feedback id."""

    @abstractmethod
    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def feedback(self, *, task: str | None = None, model: str | None = None, since: float | None = None,
                 rating: str | None = None, with_correction: bool = False, limit: int = 10_000) -> list[dict[str, Any]]:
        """Feedback joined with its request (task, model, version, inputs, output), oldest first."""

    @abstractmethod
    def inference_rows(self, *, since: float, task: str | None = None, model: str | None = None,
                       limit: int = 200_000) -> list[dict[str, Any]]:
        """Raw inference events in a window (ts, task, model, version, latency_ms, confidence, status)."""

    @abstractmethod
    def record_event(self, kind: str, doc: dict[str, Any], event_id: str | None = None) -> str:
        """A decision event (watchdog, jobs); idempotent by ``event_id`` when given."""

    @abstractmethod
    def events(self, kind: str, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def summary(self, *, window_s: float, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Per model and version over the window: count, error rate, latency p50/p95, confidence, bad feedback."""
        since = time.time() - window_s
        groups: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        for row in self.inference_rows(since=since, task=task, model=model):
            key = (row["task"], row.get("model") or "-", row.get("version"))
            g = groups.setdefault(key, {"latencies": [], "confidences": [], "errors": 0, "count": 0})
            g["count"] += 1
            if int(row["status"]) >= 400:
                g["errors"] += 1
            else:
                g["latencies"].append(float(row["latency_ms"]))
                if row.get("confidence") is not None:
                    g["confidences"].append(float(row["confidence"]))
        ratings: dict[tuple[str, str, int | None], list[int]] = {}
        by_sender: dict[tuple[str, str, int | None], dict[str, list[int]]] = {}
        for fb in self.feedback(task=task, model=model, since=since):
            key = (fb.get("task") or "-", fb.get("model") or "-", fb.get("version"))
            good_bad = ratings.setdefault(key, [0, 0])
            good_bad[1 if fb["rating"] == "bad" else 0] += 1
            mine = by_sender.setdefault(key, {}).setdefault(fb.get("sender") or "unknown", [0, 0])
            mine[1 if fb["rating"] == "bad" else 0] += 1
        out = []
        for key in sorted(set(groups) | set(ratings), key=lambda k: (k[0], k[1], k[2] or 0)):
            g = groups.get(key, {"latencies": [], "confidences": [], "errors": 0, "count": 0})
            good, bad = ratings.get(key, [0, 0])
            out.append({
                "task": key[0], "model": key[1], "version": key[2], "count": g["count"],
                "error_rate": round(g["errors"] / g["count"], 4) if g["count"] else 0.0,
                "latency_p50_ms": percentile(g["latencies"], 50), "latency_p95_ms": percentile(g["latencies"], 95),
                "mean_confidence": round(sum(g["confidences"]) / len(g["confidences"]), 4) if g["confidences"] else None,
                "feedback_count": good + bad,
                "bad_feedback_rate": round(bad / (good + bad), 4) if good + bad else None,
                **sender_counts(by_sender.get(key, {})),
            })
        return out


def sender_counts(by_sender: dict[str, list[int]]) -> dict[str, int]:
    """Distinct senders who rated, and those whose ratings were mostly bad (one vote each: a flood
    from one client counts once)."""
    return {"feedback_senders": len(by_sender),
            "bad_feedback_senders": sum(1 for good, bad in by_sender.values() if bad > good)}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return round(ordered[rank - 1], 3)
