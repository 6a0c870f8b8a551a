"""Bounded disks: uploaded images are swept by age and total size, and two identical uploads at
once each write their own temp file (one shared `.part` name made one of them fail with 500)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from services.gateway.uploads import sweep_uploads, write_upload

pytestmark = pytest.mark.unit


def test_uploads_past_the_age_and_size_limits_are_swept_oldest_first(tmp_path: Path) -> None:
    now = time.time()
    for i in range(20):  # 20 x 1000 bytes, one a minute apart; the oldest is 20 minutes old
        path = tmp_path / f"{i:02d}.img"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - (20 - i) * 60, now - (20 - i) * 60))
    removed = sweep_uploads(tmp_path, max_age_s=15 * 60 + 30, max_bytes=8000, now=now)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert removed == 12 and kept == [f"{i:02d}.img" for i in range(12, 20)], kept
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 8000
    assert sweep_uploads(tmp_path, max_age_s=3600, max_bytes=10**9, now=now) == 0, "within limits: nothing goes"


def test_identical_uploads_at_once_all_succeed(tmp_path: Path) -> None:
    target = tmp_path / "uploads" / "abc.img"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def upload() -> None:
        start.wait()
        try:
            for _ in range(50):
                target.unlink(missing_ok=True)
                write_upload(target, b"same image" * 1000)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    write_upload(target, b"same image" * 1000)
    assert target.read_bytes() == b"same image" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["abc.img"], "no temp file left behind"
