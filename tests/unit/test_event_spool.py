"""The resilient event store: serving goes on while the store is down, nothing acknowledged is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.base import EventStore
from services.common.events.resilient import ResilientEventStore, StoreUnavailable
from services.common.events.spool import Spool, orphans
from services.common.events.sqlite import SqliteEventStore

pytestmark = pytest.mark.unit


class FlakyStore(EventStore):
    """Records what reaches it; raises ConnectionError while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.inference: list[str] = []
        self.feedback_ids: list[str] = []
        self.order: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store down")

    def record_inference(self, event: InferenceEvent) -> None:
        raise AssertionError("the resilient store writes batches through write_inference")

    def write_inference(self, events: list[InferenceEvent]) -> None:
        self._check()
        for e in events:
            if e.request_id not in self.inference:
                self.inference.append(e.request_id)
                self.order.append(e.request_id)

    def ping(self) -> None:
        self._check()

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        self._check()
        return {"request_id": request_id} if request_id in self.inference else None

    def record_feedback(self, feedback: FeedbackRecord) -> str:
        self._check()
        if feedback.feedback_id not in self.feedback_ids:
            self.feedback_ids.append(feedback.feedback_id)
            self.order.append(feedback.feedback_id)
        return feedback.feedback_id

    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None:
        self._check()
        return None

    def feedback(self, **_: Any) -> list[dict[str, Any]]:
        self._check()
        return [{"feedback_id": f} for f in self.feedback_ids]

    def inference_rows(self, **_: Any) -> list[dict[str, Any]]:
        self._check()
        return []

    def record_event(self, kind: str, doc: dict[str, Any], event_id: str | None = None) -> str:
        self._check()
        return event_id or "e"

    def events(self, kind: str, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        self._check()
        return []


def event(i: int) -> InferenceEvent:
    return InferenceEvent(request_id=f"r{i}", task="qa", model="qa-extractive", version=1, latency_ms=1.0,
                          status=200, inputs={"question": f"q{i}"})


def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_down_at_start_then_everything_arrives_once_in_order(tmp_path: Path) -> None:
    backend = FlakyStore()
    opened = {"allowed": False}

    def open_backend() -> EventStore:
        if not opened["allowed"]:
            raise ConnectionError("refused")
        return backend

    store = ResilientEventStore(open_backend, Spool(tmp_path / "spool.db", 1000), retry_s=0.05)
    try:
        for i in range(20):
            store.record_inference(event(i))
        fid = store.record_feedback(FeedbackRecord(request_id="r3", rating="bad", correction="Paris"))
        assert store.get_request("r3")["inputs"] == {"question": "q3"}, "a request is found while the store is down"
        assert store.health()["status"] == "degraded" and store.health()["waiting"] == 21
        with pytest.raises(StoreUnavailable) as info:
            store.feedback(with_correction=True)
        assert info.value.status == 503 and "event store" in info.value.message
        opened["allowed"] = True
        wait_until(lambda: store.health()["waiting"] == 0)
        assert backend.inference == [f"r{i}" for i in range(20)]
        assert backend.feedback_ids == [fid]
        assert backend.order.index(fid) > backend.order.index("r3"), "feedback after the request it names"
        assert store.health()["status"] == "ok"
    finally:
        store.close()


def test_store_goes_down_mid_traffic_and_comes_back(tmp_path: Path) -> None:
    backend = FlakyStore()
    store = ResilientEventStore(lambda: backend, Spool(tmp_path / "spool.db", 1000), retry_s=0.05)
    try:
        wait_until(lambda: store.up)
        for i in range(10):
            store.record_inference(event(i))
        wait_until(lambda: len(backend.inference) == 10)
        backend.down = True
        for i in range(10, 30):
            store.record_inference(event(i))
        ids = [store.record_feedback(FeedbackRecord(request_id=f"r{i}", rating="good")) for i in (12, 25)]
        wait_until(lambda: not store.up)
        backend.down = False
        wait_until(lambda: store.health()["waiting"] == 0 and len(backend.inference) == 30)
        assert backend.inference == [f"r{i}" for i in range(30)], "in order, each once"
        assert backend.feedback_ids == ids
    finally:
        store.close()


def test_a_full_spool_drops_oldest_inference_events_never_feedback(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_inference=100)
    dropped = spool.add([("inference", f"r{i}", event(i).model_dump()) for i in range(60)])
    dropped += spool.add([("feedback", f"f{i}", {"i": i}) for i in range(5)])
    dropped += spool.add([("inference", f"r{i}", event(i).model_dump()) for i in range(60, 150)])
    assert dropped == 50 and spool.dropped() == 50
    assert spool.counts() == {"inference": 100, "feedback": 5}
    keys = [item.key for item in spool.oldest(1000)]
    assert keys[:15] == [f"r{i}" for i in range(50, 60)] + [f"f{i}" for i in range(5)], "oldest inference went first"
    assert keys[-1] == "r149"


def test_a_dead_process_spool_is_adopted_and_forwarded(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    child = f"""
import os
from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.spool import Spool, orphans
spool = Spool({str(folder / "events-gateway-other-1.db")!r}, 1000)
spool.add([("inference", "r1", InferenceEvent(request_id="r1", task="qa", latency_ms=1, status=200).model_dump()),
           ("feedback", "f1", FeedbackRecord(feedback_id="f1", request_id="r1", rating="bad").model_dump())])
os._exit(0)  # as after kill -9: nothing closed, nothing flushed by hand
"""
    subprocess.run([sys.executable, "-c", child], check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    backend = FlakyStore()
    mine = folder / "events-gateway-me-2.db"
    store = ResilientEventStore(lambda: backend, Spool(mine, 1000), retry_s=0.05,
                                find_orphans=lambda: orphans(folder, "events-gateway-*.db", 1000, mine))
    try:
        wait_until(lambda: backend.feedback_ids == ["f1"])
        assert backend.inference == ["r1"]
        wait_until(lambda: not (folder / "events-gateway-other-1.db").exists())
    finally:
        store.close()
    assert not mine.exists(), "an empty spool is removed at a clean shutdown"


def test_a_live_process_spool_is_not_adopted(tmp_path: Path) -> None:
    live = Spool(tmp_path / "events-gateway-live-1.db", 1000)
    try:
        assert orphans(tmp_path, "events-gateway-*.db", 1000, tmp_path / "mine.db") == []
    finally:
        live.close()


def test_sqlite_store_keeps_one_copy_of_a_resent_item(tmp_path: Path) -> None:
    sqlite = SqliteEventStore(tmp_path / "events.db")
    try:
        sqlite.write_inference([event(1), event(2)])
        sqlite.write_inference([event(1)])
        fb = FeedbackRecord(request_id="r1", rating="bad", correction="x")
        sqlite.record_feedback(fb)
        sqlite.record_feedback(fb)
        sqlite.record_event("watchdog", {"a": 1}, event_id="e1")
        sqlite.record_event("watchdog", {"a": 1}, event_id="e1")
        assert len(sqlite.inference_rows(since=0)) == 2
        assert len(sqlite.feedback()) == 1 and len(sqlite.events("watchdog")) == 1
    finally:
        sqlite.close()


def test_an_unwritable_sqlite_store_does_not_stop_the_service(tmp_path: Path) -> None:
    from services.common.events import EventsSettings, open_event_store

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    store = open_event_store(EventsSettings(store="sqlite", sqlite_path=blocker / "events.db", retry_s=0.05),
                             tmp_path / "state")
    try:
        store.record_inference(event(1))
        assert store.record_feedback(FeedbackRecord(request_id="r1", rating="good"))
        wait_until(lambda: store.health()["waiting"] == 2)
        assert store.health()["status"] == "degraded"
    finally:
        store.close()
