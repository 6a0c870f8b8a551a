"""Serving never waits for the event store, and nothing acknowledged is lost while it is down.

:class:`ResilientEventStore` wraps the configured store (SQLite or Elasticsearch):

- The store is opened (and, for Elasticsearch, its ILM policy and templates installed) on a
  background thread, retried every ``retry_s`` until it succeeds: a service starts and
  serves while its store is unreachable.
- Inference events are queued in memory (the gateway's event loop never blocks) and written
  by one thread in group commits. While the store is down, or while older items still wait,
  they go to the durable local spool instead, in arrival order; when it is back they are
  forwarded in that order, keyed by request id so a resend never makes a second copy.
- Feedback is acknowledged only once durable: in the store, or in the spool (fsync) while
  the store is down. It is never dropped; the spool drops only the oldest inference events
  past its bound, and counts them.
- Reads (feedback, summaries, decisions) need the store: while it is down they raise
  :class:`StoreUnavailable` (503), so the watchdog skips a pass instead of judging on
  partial data and a fine-tune job fails with one sentence.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import Unavailable
from .base import EventStore, FeedbackRecord, InferenceEvent
from .spool import EVENT, FEEDBACK, INFERENCE, Spool, SpooledItem

log = logging.getLogger("loopline.events")
RECENT_REQUESTS = 20_000
FORWARD_BATCH = 500
ORPHAN_SCAN_S = 5.0


class StoreUnavailable(Unavailable):
    def __init__(self, waiting: int) -> None:
        super().__init__(f"the event store cannot be reached right now ({waiting} events and feedback are kept "
                         "locally and will be forwarded when it is back); try again later",
                         code="event_store_unavailable", retry_after=5)


class ResilientEventStore(EventStore):
    def __init__(self, open_backend: Callable[[], EventStore], spool: Spool, *, retry_s: float = 2.0,
                 flush_interval_s: float = 0.02, description: str = "event store",
                 find_orphans: Callable[[], list[Spool]] | None = None) -> None:
        self._find_orphans = find_orphans
        self._next_orphan_scan = 0.0
        self._open_backend = open_backend
        self.spool = spool
        self.retry_s = retry_s
        self.flush_interval_s = flush_interval_s
        self.description = description
        self._backend: EventStore | None = None
        self._up = False
        self._down_since: float | None = time.time()
        self._last_error = "not connected yet"
        self._incoming: list[InferenceEvent] = []
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()  # guards _incoming and _recent
        self._io = threading.RLock()  # one writer at a time: queue -> store or spool, spool -> store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_attempt = 0.0
        self._thread = threading.Thread(target=self._loop, name="events-forwarder", daemon=True)
        self._thread.start()

    # -- state ---------------------------------------------------------------------------------
    @property
    def up(self) -> bool:
        return self._up

    def waiting(self) -> dict[str, int]:
        counts = self.spool.counts()
        with self._lock:
            queued = len(self._incoming)
        if queued and not self._up:
            counts[INFERENCE] = counts.get(INFERENCE, 0) + queued
        return counts

    def health(self) -> dict[str, Any]:
        waiting = self.waiting()
        out: dict[str, Any] = {"status": "ok" if self._up else "degraded", "waiting": sum(waiting.values()),
                               "waiting_by_kind": waiting, "dropped_inference_events": self.spool.dropped()}
        if not self._up:
            out["down_since"] = self._down_since
        return out

    def _mark_down(self, reason: str) -> None:
        self._last_error = reason
        if self._up or self._down_since is None:
            self._down_since = time.time()
            log.error("%s is down (%s): events and feedback go to the local spool until it is back",
                      self.description, reason, extra={"event_action": "event-store-down"})
        self._up = False
        self._next_attempt = time.monotonic() + self.retry_s

    def _mark_up(self) -> None:
        if not self._up:
            waiting = sum(self.spool.counts().values())
            log.warning("%s is reachable again; forwarding %d spooled items", self.description, waiting,
                        extra={"event_action": "event-store-up"})
        self._up, self._down_since = True, None

    # -- the forwarder thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # never let the forwarder die; the next tick tries again
                log.exception("event forwarding failed; retrying")
            self._wake.wait(self.flush_interval_s if self._up else min(self.retry_s, 0.5))
            self._wake.clear()

    def _tick(self) -> None:
        if not self._up and time.monotonic() >= self._next_attempt:
            self._connect()
        self.flush()
        if self._up and self._find_orphans is not None and time.monotonic() >= self._next_orphan_scan:
            self._next_orphan_scan = time.monotonic() + ORPHAN_SCAN_S
            for orphan in self._find_orphans():
                self._adopt(orphan)
        if self._up:
            self._forward_spool(self.spool)

    def _adopt(self, orphan: Spool) -> None:
        """Forward what a dead process left in its spool, then delete the file."""
        left = sum(orphan.counts().values())
        if left:
            log.warning("forwarding %d items a previous process left in %s", left, orphan.path.name,
                        extra={"event_action": "event-spool-adopt"})
        self._forward_spool(orphan)
        orphan.close(delete=self._up and not orphan.counts())

    def _connect(self) -> None:
        with self._io:  # the forwarder and a reader may both try; one at a time
            if not self._up:
                self._try_connect()

    def _try_connect(self) -> None:
        try:
            if self._backend is None:
                self._backend = self._open_backend()
            else:
                self._backend.ping()
        except Exception as exc:  # unreachable, refused, set-up failed: all mean "not yet"
            if self._down_since is not None and self._last_error == "not connected yet":
                log.error("%s unreachable at start (%s); serving continues, retrying every %g s",
                          self.description, type(exc).__name__, self.retry_s,
                          extra={"event_action": "event-store-down"})
            self._mark_down(type(exc).__name__)
            return
        self._mark_up()

    def _forward_spool(self, spool: Spool) -> None:
        with self._io:
            while self._up and not self._stop.is_set():
                items = spool.oldest(FORWARD_BATCH)
                if not items:
                    return
                done: list[int] = []
                try:
                    for group in _runs(items):
                        self._send(group)
                        done.extend(i.seq for i in group)
                except Exception as exc:
                    log.warning("forwarding stopped", exc_info=True)
                    self._mark_down(type(exc).__name__)
                finally:
                    spool.remove(done)

    def _send(self, group: list[SpooledItem]) -> None:
        assert self._backend is not None
        kind = group[0].kind
        if kind == INFERENCE:
            self._backend.write_inference([InferenceEvent(**i.doc) for i in group])
        elif kind == FEEDBACK:
            for item in group:
                self._backend.record_feedback(FeedbackRecord(**item.doc))
        else:
            for item in group:
                self._backend.record_event(item.doc["kind"], item.doc["doc"], event_id=item.key)

    # -- writes ------------------------------------------------------------------------------------
    def record_inference(self, event: InferenceEvent) -> None:
        row = _flat(event)
        with self._lock:
            self._incoming.append(event)
            self._recent[event.request_id] = row
            while len(self._recent) > RECENT_REQUESTS:
                self._recent.popitem(last=False)

    def flush(self) -> None:
        """Write every queued inference event: to the store when it is up and nothing older waits,
        else to the spool."""
        with self._io:
            with self._lock:
                batch, self._incoming = self._incoming, []
            if not batch:
                return
            if self._up and not self.spool.counts():
                assert self._backend is not None
                try:
                    self._backend.write_inference(batch)
                    return
                except Exception as exc:
                    self._mark_down(type(exc).__name__)
            dropped = self.spool.add([(INFERENCE, e.request_id, e.model_dump()) for e in batch])
            if dropped:
                log.warning("event spool full: dropped the %d oldest inference events", dropped,
                            extra={"event_action": "event-spool-drop"})

    def record_feedback(self, feedback: FeedbackRecord) -> str:
        with self._io:
            self.flush()  # the request it names goes first
            if self._up and not self.spool.counts():
                assert self._backend is not None
                try:
                    return self._backend.record_feedback(feedback)
                except Exception as exc:
                    self._mark_down(type(exc).__name__)
            self.spool.add([(FEEDBACK, feedback.feedback_id, feedback.model_dump())])
            self._wake.set()
            return feedback.feedback_id

    def record_event(self, kind: str, doc: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or uuid.uuid4().hex
        with self._io:
            if self._up and not self.spool.counts():
                assert self._backend is not None
                try:
                    return self._backend.record_event(kind, doc, event_id=event_id)
                except Exception as exc:
                    self._mark_down(type(exc).__name__)
            self.spool.add([(EVENT, event_id, {"kind": kind, "doc": doc})])
            return event_id

    def write_inference(self, events: list[InferenceEvent]) -> None:
        for event in events:
            self.record_inference(event)
        self.flush()

    # -- reads -----------------------------------------------------------------------------------
    def _store(self) -> EventStore:
        if not self._up and time.monotonic() >= self._next_attempt:
            self._connect()  # a read right after start (or after the store came back) need not wait a tick
        if not self._up or self._backend is None:
            raise StoreUnavailable(sum(self.waiting().values()))
        return self._backend

    def _read(self, fn: Callable[[EventStore], Any]) -> Any:
        store = self._store()
        try:
            return fn(store)
        except Exception as exc:
            try:
                store.ping()
            except Exception:
                self._mark_down(type(exc).__name__)
                raise StoreUnavailable(sum(self.waiting().values())) from None
            raise  # the store answers: this is not an outage, it is a bug to see as one

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._recent.get(request_id)
        if row is not None:
            return row
        spooled = self.spool.find(INFERENCE, request_id)
        if spooled is not None:
            return _flat(InferenceEvent(**spooled))
        return self._read(lambda s: s.get_request(request_id))

    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None:
        spooled = self.spool.find(FEEDBACK, feedback_id)
        if spooled is not None:
            return spooled
        return self._read(lambda s: s.get_feedback(feedback_id))

    def feedback(self, **query: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        self.flush()
        return self._read(lambda s: s.feedback(**query))

    def inference_rows(self, **query: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        self.flush()
        return self._read(lambda s: s.inference_rows(**query))

    def summary(self, **query: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        self.flush()
        return self._read(lambda s: s.summary(**query))

    def events(self, kind: str, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._read(lambda s: s.events(kind, since=since, limit=limit))

    def ping(self) -> None:
        self._store().ping()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        try:
            self.flush()
        finally:
            if self._backend is not None:
                self._backend.close()
            self.spool.close(delete=not self.spool.counts())


def _flat(event: InferenceEvent) -> dict[str, Any]:
    """The shape ``get_request`` answers (as the stores do)."""
    return event.model_dump(exclude={"client_id", "route"})


def _runs(items: list[SpooledItem]) -> list[list[SpooledItem]]:
    """Consecutive items of one kind, in order (a batch of inference events is one bulk write)."""
    runs: list[list[SpooledItem]] = []
    for item in items:
        if runs and runs[-1][0].kind == item.kind:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class StoreCollector:
    """Prometheus metrics read at scrape time: is the store up, what waits, what was dropped."""

    def __init__(self, store: ResilientEventStore) -> None:
        self.store = store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("loopline_event_store_up", "1 while the event store answers, 0 while events spool",
                                value=1 if self.store.up else 0)
        waiting = GaugeMetricFamily("loopline_event_spool_waiting", "items kept locally for the event store",
                                    labels=["kind"])
        counts = self.store.waiting()
        for kind in (INFERENCE, FEEDBACK, EVENT):
            waiting.add_metric([kind], counts.get(kind, 0))
        yield waiting
        yield CounterMetricFamily("loopline_event_spool_dropped", "oldest inference events dropped: spool full",
                                  value=self.store.spool.dropped())
