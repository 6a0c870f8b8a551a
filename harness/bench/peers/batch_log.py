"""One line per model call on the peer's stdout (its log): the batch size and the seconds the model
ran. The bench reads them back (``servers.PeerServer.batches``) to give the peers the same "mean
batch" and "model busy" figures Loopline's cells get from its metrics; a peer server has no such
metric of its own. Runs inside the peers' environments: standard library only."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TypeVar

PREFIX = "PEER_BATCH "
T = TypeVar("T")


def logged_batch(size: int, run: Callable[[], T]) -> T:
    """``run()``, with one ``PEER_BATCH {"size", "seconds"}`` line written after it."""
    started = time.perf_counter()
    out = run()
    sys.stdout.write(PREFIX + json.dumps({"size": size, "seconds": round(time.perf_counter() - started, 6)}) + "\n")
    sys.stdout.flush()
    return out


def read_batches(log_text: str) -> tuple[float, float, float]:
    """Sum of batch sizes, number of batches and sum of model seconds over every line of ``log_text``."""
    total = count = seconds = 0.0
    for line in log_text.splitlines():
        at = line.find(PREFIX)
        if at < 0:
            continue
        try:
            entry = json.loads(line[at + len(PREFIX):])
        except ValueError:
            continue  # a line cut by another process's write
        total += entry["size"]
        count += 1
        seconds += entry["seconds"]
    return total, count, seconds
