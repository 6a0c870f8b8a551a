"""The local spool: events and feedback waiting for an event store that is down.

One SQLite file under the state directory, in arrival order (``seq``). Each item has a
key that makes forwarding idempotent (request id, feedback id, event id), so a crash
between "sent" and "deleted" sends it again and the store keeps one copy. The spool is
bounded: past ``max_inference`` queued inference events the oldest of them are dropped and
counted; feedback and decision events are never dropped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..sqlite import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
  UNIQUE (kind, key));
CREATE TABLE IF NOT EXISTS dropped (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""
INFERENCE, FEEDBACK, EVENT = "inference", "feedback", "event"


@dataclass(frozen=True)
class SpooledItem:
    seq: int
    kind: str
    key: str
    doc: dict[str, Any]


class SpoolBusy(RuntimeError):
    """Another live process owns this spool file."""


class Spool:
    """One process's spool file, held under an exclusive lock for as long as the process lives, so a
    spool left behind by a dead process (kill -9, an evicted pod) can be told apart and adopted."""

    def __init__(self, path: Path, max_inference: int) -> None:
        self.path = Path(path)
        self.max_inference = max_inference
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = FileLock(str(self.path) + ".lock")
        try:
            self._owner.acquire(timeout=0)
        except Timeout:
            raise SpoolBusy(f"{self.path} belongs to a live process") from None
        self._connections = ThreadConnections(self.path, synchronous="FULL")
        self._conn().executescript(SCHEMA)
        self._lock = threading.Lock()
        rows = self._conn().execute("SELECT kind, COUNT(*) FROM spool GROUP BY kind").fetchall()
        self._counts: dict[str, int] = {str(k): int(n) for k, n in rows}  # kept in step with the file

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def _transaction(self, work: Any) -> Any:
        with self._connections.transaction() as conn:
            return work(conn)

    def add(self, items: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Append (kind, key, doc) items in one durable transaction; returns inference events dropped."""
        if not items:
            return 0
        def work(conn: sqlite3.Connection) -> tuple[dict[str, int], int]:
            added: dict[str, int] = {}
            for kind, key, doc in items:
                cur = conn.execute("INSERT OR IGNORE INTO spool (kind, key, doc) VALUES (?, ?, ?)",
                                   (kind, key, json.dumps(doc, default=str)))
                added[kind] = added.get(kind, 0) + cur.rowcount
            dropped = self._enforce_bound(conn, self._counts.get(INFERENCE, 0) + added.get(INFERENCE, 0))
            return added, dropped

        with self._lock:
            added, dropped = self._transaction(work)
            for kind, n in added.items():
                self._counts[kind] = self._counts.get(kind, 0) + n
            self._counts[INFERENCE] = self._counts.get(INFERENCE, 0) - dropped
        return dropped

    def _enforce_bound(self, conn: sqlite3.Connection, queued: int) -> int:
        excess = queued - self.max_inference
        if excess <= 0:
            return 0
        conn.execute("DELETE FROM spool WHERE seq IN (SELECT seq FROM spool WHERE kind = ? ORDER BY seq LIMIT ?)",
                     (INFERENCE, excess))
        conn.execute("INSERT INTO dropped (kind, count) VALUES (?, ?) "
                     "ON CONFLICT(kind) DO UPDATE SET count = count + excluded.count", (INFERENCE, excess))
        return excess

    def oldest(self, limit: int) -> list[SpooledItem]:
        rows = self._conn().execute("SELECT seq, kind, key, doc FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [SpooledItem(int(r[0]), str(r[1]), str(r[2]), json.loads(r[3])) for r in rows]

    def remove(self, seqs: list[int]) -> None:
        if not seqs:
            return
        def work(conn: sqlite3.Connection) -> dict[str, int]:
            removed: dict[str, int] = {}
            for seq in seqs:
                row = conn.execute("DELETE FROM spool WHERE seq = ? RETURNING kind", (seq,)).fetchone()
                if row is not None:
                    removed[row[0]] = removed.get(row[0], 0) + 1
            return removed

        with self._lock:
            for kind, n in self._transaction(work).items():
                self._counts[kind] = self._counts.get(kind, 0) - n

    def find(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT doc FROM spool WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        """Items waiting, by kind (only kinds with some)."""
        with self._lock:
            return {k: n for k, n in self._counts.items() if n > 0}

    def dropped(self) -> int:
        row = self._conn().execute("SELECT count FROM dropped WHERE kind = ?", (INFERENCE,)).fetchone()
        return int(row[0]) if row else 0

    def close(self, delete: bool = False) -> None:
        """Release the file (``delete``: it is empty and nobody needs it again)."""
        self._connections.close()
        if delete:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._owner.release()
        if delete:
            Path(str(self.path) + ".lock").unlink(missing_ok=True)


def orphans(folder: Path, pattern: str, max_inference: int, mine: Path) -> list[Spool]:
    """Spool files matching ``pattern`` in ``folder`` whose process is gone (their lock is free)."""
    found = []
    for path in sorted(Path(folder).glob(pattern)):
        if path == mine or path.suffix != ".db":
            continue
        try:
            found.append(Spool(path, max_inference))
        except SpoolBusy:
            continue
    return found
