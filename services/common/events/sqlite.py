"""SQLite (WAL) event store under ``data/state``: the embedded default.

Inference events are group-committed: ``record_inference`` only queues the row (it runs on
the gateway's event loop), and a writer thread commits everything queued every
``flush_interval_s`` (20 ms) in one transaction: a per-request transaction cost more than
the rest of the gateway's work. Readers see queued rows at once. A kill -9 can lose at
most the last flush window of *inference* events; feedback is different: it flushes the
queue, then commits with ``synchronous=FULL`` before returning, so an acknowledged
feedback (and the request it names) survives even a power cut.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..sqlite import ThreadConnections, where_equal
from .base import EventStore, FeedbackRecord, InferenceEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS inference (
  request_id TEXT PRIMARY KEY, ts REAL NOT NULL, task TEXT NOT NULL, model TEXT, version INTEGER,
  latency_ms REAL NOT NULL, confidence REAL, status INTEGER NOT NULL, error_code TEXT, client_id TEXT,
  route TEXT, inputs TEXT NOT NULL DEFAULT '{}', output TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS inference_ts ON inference (ts);
CREATE TABLE IF NOT EXISTS feedback (
  feedback_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL, rating TEXT NOT NULL,
  correction TEXT, comment TEXT, task TEXT, model TEXT, version INTEGER, sender TEXT,
  sender_role TEXT NOT NULL DEFAULT 'anonymous', trust TEXT NOT NULL DEFAULT 'pending');
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts);
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts);
"""


# columns added after the first release: an older database gets them on open
FEEDBACK_ADDED = (("sender", "TEXT"), ("sender_role", "TEXT NOT NULL DEFAULT 'anonymous'"),
                  ("trust", "TEXT NOT NULL DEFAULT 'pending'"))
FEEDBACK_COLUMNS = ("feedback_id", "request_id", "ts", "rating", "correction", "comment", "task", "model", "version",
                    "sender", "sender_role", "trust")
INFERENCE_COLUMNS = ("request_id", "ts", "task", "model", "version", "latency_ms", "confidence", "status",
                     "error_code", "client_id", "route", "inputs", "output")


class SqliteEventStore(EventStore):
    def __init__(self, path: Path, flush_interval_s: float = 0.02) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self._connections = ThreadConnections(self.path, synchronous="NORMAL")
        self._conn().executescript(SCHEMA)
        self._migrate()
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="events-writer", daemon=True)
        self._writer.start()

    def _migrate(self) -> None:
        have = {r["name"] for r in self._conn().execute("PRAGMA table_info(feedback)").fetchall()}
        for name, decl in FEEDBACK_ADDED:
            if name not in have:
                try:
                    self._conn().execute(f"ALTER TABLE feedback ADD COLUMN {name} {decl}")
                except sqlite3.OperationalError:  # another process added it first
                    pass
        self._conn().execute("CREATE INDEX IF NOT EXISTS feedback_sender ON feedback (sender)")

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def record_inference(self, event: InferenceEvent) -> None:
        e = event
        row = (e.request_id, e.ts, e.task, e.model, e.version, e.latency_ms, e.confidence, e.status, e.error_code,
               e.client_id, e.route, json.dumps(e.inputs), json.dumps(e.output))
        with self._lock:
            self._pending[e.request_id] = row
        self._wake.set()

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            if self._stop.wait(self.flush_interval_s):  # the group-commit window
                break
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Commit every queued inference event in one transaction."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._pending.values())
            if not rows:
                return
            with self._connections.transaction("DEFERRED") as conn:
                conn.executemany(f"INSERT OR REPLACE INTO inference VALUES ({','.join('?' * len(INFERENCE_COLUMNS))})",
                                 rows)
            with self._lock:
                for row in rows:
                    if self._pending.get(row[0]) is row:
                        del self._pending[row[0]]

    def write_inference(self, events: list[InferenceEvent]) -> None:
        for event in events:
            self.record_inference(event)
        self.flush()

    def ping(self) -> None:
        self._conn().execute("SELECT 1 FROM inference LIMIT 1").fetchall()

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is not None:
            return _inference_row(dict(zip(INFERENCE_COLUMNS, pending, strict=True)))
        row = self._conn().execute("SELECT * FROM inference WHERE request_id = ?", (request_id,)).fetchone()
        return _inference_row(dict(row)) if row else None

    def record_feedback(self, feedback: FeedbackRecord) -> str:
        f = feedback
        self.flush()  # the request a feedback names is durable before the feedback is
        conn = self._conn()
        conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute(f"INSERT OR IGNORE INTO feedback ({','.join(FEEDBACK_COLUMNS)}) "
                         f"VALUES ({','.join('?' * len(FEEDBACK_COLUMNS))})",
                         (f.feedback_id, f.request_id, f.ts, f.rating, f.correction, f.comment, f.task, f.model,
                          f.version, f.sender, f.sender_role, f.trust))
        finally:
            conn.execute("PRAGMA synchronous=NORMAL")
        return f.feedback_id

    def get_feedback(self, feedback_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM feedback WHERE feedback_id = ?", (feedback_id,)).fetchone()
        return dict(row) if row else None

    def feedback(self, *, task: str | None = None, model: str | None = None, since: float | None = None,
                 rating: str | None = None, with_correction: bool = False, limit: int = 10_000) -> list[dict[str, Any]]:
        self.flush()  # joined with the requests' inputs
        where, args = ["1=1"], []
        where_equal(where, args, {"f.task": task, "f.model": model, "f.rating": rating})
        if since is not None:
            where.append("f.ts >= ?")
            args.append(since)
        if with_correction:
            where.append("f.correction IS NOT NULL AND f.correction != ''")
        rows = self._conn().execute(
            "SELECT f.*, i.inputs AS inputs, i.output AS output FROM feedback f "
            f"LEFT JOIN inference i ON i.request_id = f.request_id WHERE {' AND '.join(where)} "
            "ORDER BY f.ts LIMIT ?", (*args, limit)).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["inputs"] = json.loads(d["inputs"] or "{}")
            d["output"] = json.loads(d["output"] or "{}")
            out.append(d)
        return out

    def inference_rows(self, *, since: float, task: str | None = None, model: str | None = None,
                       limit: int = 200_000) -> list[dict[str, Any]]:
        self.flush()
        where, args = ["ts >= ?"], [since]
        where_equal(where, args, {"task": task or None, "model": model or None})
        rows = self._conn().execute(
            "SELECT request_id, ts, task, model, version, latency_ms, confidence, status, error_code FROM inference "
            f"WHERE {' AND '.join(where)} ORDER BY ts LIMIT ?", (*args, limit)).fetchall()
        return [dict(r) for r in rows]

    def record_event(self, kind: str, doc: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or uuid.uuid4().hex
        self._conn().execute("INSERT OR IGNORE INTO events VALUES (?,?,?,?)",
                             (event_id, float(doc.get("ts", time.time())), kind, json.dumps(doc, default=str)))
        return event_id

    def events(self, kind: str, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM events WHERE kind = ? AND ts >= ? ORDER BY ts LIMIT ?",
                                    (kind, since or 0.0, limit)).fetchall()
        return [{"event_id": r["event_id"], "ts": r["ts"], "kind": r["kind"], **json.loads(r["doc"])} for r in rows]

    def close(self) -> None:
        self._stop.set()
        self._writer.join(5)
        self.flush()
        self._connections.close()


def _inference_row(d: dict[str, Any]) -> dict[str, Any]:
    d["inputs"] = json.loads(d.get("inputs") or "{}")
    d["output"] = json.loads(d.get("output") or "{}")
    return d
