"""Uploaded images on the shared volume, bounded: the same volume holds the models and the job
queue, so uploads that grew without limit would eventually stop training and serving alike.

An image is kept (content-addressed) so feedback on its answer can be learned from; past
``max_age_s`` or beyond ``max_bytes`` in total the oldest go first. A fine-tune job whose
feedback names an image that was swept skips that example.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

log = logging.getLogger("loopline.gateway.uploads")


def write_upload(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; concurrent identical uploads each use their own temp
    name (one shared ``.part`` name made one of two simultaneous requests fail)."""
    try:
        os.utime(path)  # used again: the sweep keeps it longer
        return
    except FileNotFoundError:  # new, or swept between two requests: written below
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sweep_uploads(root: Path, max_age_s: float, max_bytes: int, now: float | None = None) -> int:
    """Delete uploads older than ``max_age_s``, then the oldest until the rest fit ``max_bytes``."""
    now = now or time.time()
    entries = []
    for entry in os.scandir(root) if root.is_dir() else []:
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        if entry.is_file():
            entries.append((st.st_mtime, st.st_size, entry.path))
    entries.sort()
    total = sum(size for _, size, _ in entries)
    removed = 0
    for mtime, size, path in entries:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass  # another replica swept it
        total -= size
    if removed:
        log.info("uploads: removed %d old image(s); %d bytes kept", removed, total)
    return removed
