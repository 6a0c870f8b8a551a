"""The persistent job queue: one SQLite file (``<state>/finetune.db``), WAL, one row per job.

Status moves queued -> running -> succeeded | rejected | failed | cancelled. A job found
``running`` when the service starts was interrupted (the process died): it is marked failed
with that reason, unless its runner can re-attach (a Kubernetes Job keeps running).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from services.common.errors import Conflict, NotFound
from services.common.sqlite import ThreadConnections, where_equal

from .schemas import TERMINAL, JobView, Progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, model TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL, runner TEXT NOT NULL,
  created_at REAL NOT NULL, started_at REAL, finished_at REAL, request TEXT NOT NULL,
  progress TEXT NOT NULL DEFAULT '{}', version INTEGER, alias TEXT, gate TEXT, data TEXT, error TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0, external TEXT);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""
JSON_COLUMNS = ("request", "progress", "gate", "data")


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path, synchronous="FULL")
        self._write_lock = threading.Lock()
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    # -- writing ---------------------------------------------------------------------------
    def create(self, *, model: str, task: str, runner: str, request: dict[str, Any]) -> JobView:
        job_id = f"ft-{uuid.uuid4().hex[:12]}"
        progress = Progress().model_dump()
        self._conn().execute(
            "INSERT INTO jobs (id, model, task, status, runner, created_at, request, progress) VALUES (?,?,?,?,?,?,?,?)",
            (job_id, model, task, "queued", runner, time.time(), json.dumps(request), json.dumps(progress)))
        return self.get(job_id)

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols, args = [], []
        for key, value in fields.items():
            cols.append(f"{key} = ?")
            args.append(json.dumps(value) if key in JSON_COLUMNS and value is not None else value)
        with self._write_lock:
            self._conn().execute(f"UPDATE jobs SET {', '.join(cols)} WHERE id = ?", (*args, job_id))

    def claim_next(self) -> JobView | None:
        """The oldest queued job, now running (one atomic step, so one worker never races another)."""
        with self._write_lock, self._connections.transaction() as conn:
            row = conn.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1").fetchone()
            if row is not None:
                conn.execute("UPDATE jobs SET status = 'running', started_at = ?, progress = ? WHERE id = ?",
                             (time.time(), json.dumps(Progress(phase="starting").model_dump()), row["id"]))
        return self.get(row["id"]) if row is not None else None

    def finish(self, job_id: str, status: str, *, error: str | None = None, **fields: Any) -> None:
        assert status in TERMINAL
        self.update(job_id, status=status, error=error, finished_at=time.time(), **fields)

    def request_cancel(self, job_id: str) -> JobView:
        """Queued jobs end at once; running ones are asked to stop at their next step."""
        job = self.get(job_id)
        if job.status in TERMINAL:
            raise Conflict(f"job {job_id} already ended ({job.status})")
        with self._write_lock:
            self._conn().execute(
                "UPDATE jobs SET status = CASE status WHEN 'queued' THEN 'cancelled' ELSE status END, "
                "finished_at = CASE status WHEN 'queued' THEN ? ELSE finished_at END, "
                "error = CASE status WHEN 'queued' THEN 'cancelled before it started' ELSE error END, "
                "cancel_requested = 1 WHERE id = ?", (time.time(), job_id))
        return self.get(job_id)

    def interrupted(self) -> list[JobView]:
        return self.list(status="running")

    # -- reading ---------------------------------------------------------------------------
    def get(self, job_id: str) -> JobView:
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no fine-tune job {job_id!r}")
        return _view(row)

    def external(self, job_id: str) -> str | None:
        row = self._conn().execute("SELECT external FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["external"] if row else None

    def list(self, *, status: str | None = None, model: str | None = None, limit: int = 100) -> list[JobView]:
        where, args = ["1=1"], []
        where_equal(where, args, {"status": status or None, "model": model or None})
        rows = self._conn().execute(f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT ?",
                                    (*args, limit)).fetchall()
        return [_view(r) for r in rows]

    def close(self) -> None:
        self._connections.close()


def _view(row: sqlite3.Row) -> JobView:
    d = dict(row)
    for key in JSON_COLUMNS:
        d[key] = json.loads(d[key]) if d.get(key) else None
    d["progress"] = Progress(**(d["progress"] or {}))
    d["cancel_requested"] = bool(d["cancel_requested"])
    d.pop("external", None)
    return JobView(**d)
