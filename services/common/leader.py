"""One leader per data dir for the services that must run once (fine-tune worker, watchdog).

The fine-tune service owns a SQLite job queue on the shared volume and the watchdog fires
retraining: two of either (a rolling update's overlap, a manual scale-up, two ``loopline up``
on one data dir) would corrupt the queue over NFS or fire twice. The first instance takes an
exclusive ``flock`` on ``<state>/<name>.leader`` (flock reaches across NFS clients) and keeps it
for its life; the kernel drops it when the process dies, however it dies. Another instance is a
standby: it serves health, answers 503 on readiness and takes no work until it gets the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any


class LeaderLock:
    def __init__(self, state_dir: Path, name: str) -> None:
        self.path = Path(state_dir) / f"{name}.leader"
        self.name = name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process leads (now or already)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        who = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, who, 0)
        self._fd = fd
        return True

    def holder(self) -> dict[str, Any]:
        """Who leads, as the leader wrote it (for a standby's readiness message)."""
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8") or "{}"))
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def standby_message(self) -> str:
        who = self.holder()
        where = f" ({who.get('host')} pid {who.get('pid')})" if who else ""
        return f"standby: another {self.name} instance{where} leads on this data dir; this one takes over when it stops"
