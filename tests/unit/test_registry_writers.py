"""A restart never deletes a live writer's temp folder: ``clean_partial`` removes a ``.tmp-*``
folder only when its writer's lock is free (the writer died), so a training Job still writing
its version, or another pod's OpenVINO conversion, is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from services.common.registry import Registry, temp_writer

pytestmark = pytest.mark.unit


def test_clean_partial_keeps_a_live_writer_and_removes_a_dead_one(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    mdir = tmp_path / "registry" / "qa-extractive"
    cache = tmp_path / "registry" / ".openvino-cache"
    # a writer in another process (a training Job, another pod) that is still writing
    live = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from services.common.registry import temp_writer
        with temp_writer(Path({str(mdir / ".tmp-live")!r})) as tmp:
            (tmp / "weights.bin").write_bytes(b"x" * 1000)
            print("writing", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert live.stdout is not None and live.stdout.readline().strip() == "writing"
    # one that was SIGKILLed mid-write: its folder and (free) lock file remain
    dead = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from services.common.registry import temp_writer
        with temp_writer(Path({str(cache / ".tmp-conv-dead")!r})) as tmp:
            (tmp / "model.xml").write_text("partial")
            os.kill(os.getpid(), signal.SIGKILL)
        """)], check=False)
    assert dead.returncode == -9 and (cache / ".tmp-conv-dead").is_dir()
    legacy_young = mdir / ".tmp-young"  # no lock file (a writer from before the lock): kept while young
    legacy_young.mkdir()
    legacy_old = mdir / ".tmp-old"
    legacy_old.mkdir()
    old = time.time() - 2 * 24 * 3600
    os.utime(legacy_old, (old, old))
    try:
        removed = {p.name for p in registry.clean_partial()}
        assert removed == {".tmp-conv-dead", ".tmp-old"}, removed
        assert (mdir / ".tmp-live" / "weights.bin").is_file(), "a live writer's folder survives a restart"
        assert legacy_young.is_dir()
        assert not (cache / ".tmp-conv-dead.writer").exists()
    finally:
        assert live.stdin is not None
        live.stdin.write("\n")
        live.stdin.close()
        live.wait(30)
    assert not (mdir / ".tmp-live").exists() and not (mdir / ".tmp-live.writer").exists(), "the writer cleans up"


def test_a_version_being_written_survives_a_concurrent_clean_partial(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")

    def write(out: Path) -> None:
        (out / "weights.bin").write_bytes(b"w")
        assert registry.clean_partial() == [], "the writer's own folder is live"
        assert (out / "weights.bin").is_file()

    ref = registry.create_version("qa-x", task="qa", framework="torch", write=write)
    assert ref.version == 1 and (ref.path / "weights.bin").is_file()
    assert [p.name for p in (tmp_path / "registry" / "qa-x").iterdir() if p.name.startswith(".tmp")] == []


def test_temp_writer_removes_its_folder_when_the_write_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), temp_writer(tmp_path / ".tmp-x") as tmp:
        (tmp / "f").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
