"""SQLite connections for multi-threaded services: one WAL connection per thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class ThreadConnections:
    """``get()`` returns this thread's connection (autocommit, WAL, busy timeout)."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """This thread's connection inside BEGIN ... COMMIT (ROLLBACK when the block raises)."""
        conn = self.get()
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def where_equal(where: list[str], args: list[Any], columns: dict[str, Any]) -> None:
    """Add ``column = ?`` to a WHERE clause for every column given a value (None: no condition).
    Column names come from the code, never from a request."""
    for column, value in columns.items():
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
