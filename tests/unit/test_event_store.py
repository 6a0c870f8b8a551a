from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.sqlite import SqliteEventStore

pytestmark = pytest.mark.unit


def _event(rid: str, **kw) -> InferenceEvent:
    return InferenceEvent(request_id=rid, task="qa", model="m", version=1, latency_ms=kw.pop("latency_ms", 10.0),
                          status=kw.pop("status", 200), confidence=kw.pop("confidence", 0.5), **kw)


def _on_disk(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT request_id FROM inference")}


def test_group_commit_is_visible_at_once_and_durable_soon(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", flush_interval_s=0.02)
    store.record_inference(_event("a", inputs={"question": "q"}))
    assert store.get_request("a")["inputs"] == {"question": "q"}, "readable before the commit"
    deadline = time.monotonic() + 5
    while "a" not in _on_disk(tmp_path / "events.db") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "a" in _on_disk(tmp_path / "events.db")
    store.close()


def test_feedback_makes_its_request_durable_first_and_close_flushes(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", flush_interval_s=60)  # the writer never fires by itself
    store.record_inference(_event("r1"))
    store.record_feedback(FeedbackRecord(request_id="r1", rating="bad", correction="x", task="qa", model="m", version=1))
    assert "r1" in _on_disk(tmp_path / "events.db")
    store.record_inference(_event("r2"))
    assert "r2" not in _on_disk(tmp_path / "events.db")
    store.close()
    assert "r2" in _on_disk(tmp_path / "events.db")


def test_summary_counts_errors_latency_confidence_and_feedback(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    for i, latency in enumerate([10, 20, 30, 40]):
        store.record_inference(_event(f"ok{i}", latency_ms=latency, confidence=0.2 * (i + 1)))
    store.record_inference(_event("bad", status=503, confidence=None))
    store.record_feedback(FeedbackRecord(request_id="ok0", rating="bad", task="qa", model="m", version=1))
    store.record_feedback(FeedbackRecord(request_id="ok1", rating="good", task="qa", model="m", version=1))
    [row] = store.summary(window_s=60)
    assert row["count"] == 5 and row["error_rate"] == 0.2
    assert (row["latency_p50_ms"], row["latency_p95_ms"]) == (20, 40)
    assert row["mean_confidence"] == pytest.approx(0.5) and row["bad_feedback_rate"] == 0.5
    store.close()
