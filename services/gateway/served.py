"""The requests this gateway and its sibling replicas answered, on the shared data volume.

Feedback names a request id. The replica that answered it keeps the request in memory and in
its own spool, and the event store has it about a second later, or only after an outage. With N
replicas behind a Service, feedback lands on another replica (N-1)/N of the time: before this
index it got 404 within that second and 503 for the whole outage. Every replica writes one small
file per answered request here *before* it answers, so any replica finds the request at once,
with the event store up or down.

One file per request (atomic rename, no locks) rather than a shared SQLite file: the volume is
NFS in production, where SQLite's locking is unreliable and WAL unusable. Files older than
``ttl_s`` are swept; by then the event store has the request (or the outage outlasted the TTL).
On NFS, mount with ``lookupcache=positive`` (docs/deploy.md) so a replica never caches "no such
file" for a request another replica just wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("loopline.gateway.served")
SWEEP_EVERY_S = 600.0


class ServedIndex:
    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = Path(root)
        self.ttl_s = ttl_s
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S

    def _path(self, request_id: str) -> Path:
        # request ids come from clients (X-Request-ID): hashed, so none can name a path
        digest = hashlib.sha256(request_id.encode("utf-8")).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def add(self, row: dict[str, Any]) -> None:
        """Record an answered request (task, model, version...); visible to every replica on return."""
        path = self._path(str(row["request_id"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps(row, default=str), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_EVERY_S
            self.sweep()

    def get(self, request_id: str) -> dict[str, Any] | None:
        path = self._path(request_id)
        try:
            if time.time() - path.stat().st_mtime > self.ttl_s:
                return None
            row = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return row if row.get("request_id") == request_id else None

    def sweep(self, now: float | None = None) -> int:
        """Delete entries older than the TTL (and temp files a crashed writer left); returns how many."""
        cutoff = (now or time.time()) - self.ttl_s
        removed = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            try:
                entries = list(os.scandir(shard))
            except NotADirectoryError:
                continue
            for entry in entries:
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass  # another replica swept it first
        if removed:
            log.info("served-request index: swept %d entries older than %.0fs", removed, self.ttl_s)
        return removed
