"""Bounded disks: the services' log file rotates, so a pod's 1 GiB log volume never fills.

About 485 bytes per gateway request used to accumulate forever: pods were evicted every ~2 M
requests. Written past the limit here, the files stay within (backups + 1) x max_bytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.logs import configure_logging
from services.common.settings import CommonSettings

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def test_log_file_rotates_and_stays_bounded(tmp_path: Path, restore_logging: None) -> None:
    log_file = tmp_path / "logs" / "gateway.log"
    max_bytes, backups = 20_000, 2
    configure_logging("gateway", "INFO", log_file, max_bytes=max_bytes, backups=backups)
    log = logging.getLogger("loopline.gateway")
    line = "request answered " + "x" * 400
    for i in range(1000):  # ~0.45 MB: twenty times the limit
        log.info("%s %d", line, i)
    files = sorted(log_file.parent.iterdir())
    assert [f.name for f in files] == ["gateway.log", "gateway.log.1", "gateway.log.2"], files
    assert all(f.stat().st_size <= max_bytes for f in files), [f.stat().st_size for f in files]
    assert sum(f.stat().st_size for f in files) <= (backups + 1) * max_bytes
    last = json.loads(log_file.read_text().splitlines()[-1])
    assert last["message"].endswith(" 999") and last["service.name"] == "gateway", "the newest lines are kept"


def test_rotation_is_a_setting_with_bounded_defaults() -> None:
    common = CommonSettings()
    assert 0 < common.log_max_bytes * (common.log_backups + 1) <= 256 * 1024 * 1024, \
        "the default fits the 1 GiB log emptyDir with room to spare"
