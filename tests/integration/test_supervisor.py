"""`loopline up`'s children die with their supervisor, and a broken log pipe never fails work.

A supervisor killed by SIGKILL (or a closed terminal) used to leave every service running and
holding its port, and the next log line of an orphan crashed what it was doing ("training
crashed: BrokenPipeError"). Real processes, no models: a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.servers import REPO

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_children_die_when_the_supervisor_is_killed() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys, time
        from services.ops.stack import spawn_child
        child = spawn_child([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)"], dict(os.environ))
        print(child.pid, flush=True)
        time.sleep(600)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(supervisor.stdout.readline())  # type: ignore[union-attr]
    try:
        assert not _gone(child)
        assert os.getsid(child) == child, "the child has its own session (Ctrl-C reaches the supervisor only)"
        supervisor.kill()  # SIGKILL: no handler, no cleanup of its own
        supervisor.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "an orphan outlived its supervisor"
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_broken_log_pipe_never_fails_work(tmp_path: Path) -> None:
    """The reader of the child's output goes away mid-job; the job's logs, prints and progress
    output then hit a broken pipe, and the job still finishes and exits 0."""
    done = tmp_path / "done"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import logging, sys
        from pathlib import Path
        from services.common.logs import configure_logging
        configure_logging("finetune-job")
        sys.stdin.readline()  # the reader has closed its end now
        log = logging.getLogger("loopline.test")
        for i in range(2000):
            log.info("step %d of the job", i)
            print("progress", i)
            sys.stderr.write("bar\\r")
        sys.stdout.flush()
        Path({str(done)!r}).write_text("finished")
        """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert child.stdout is not None and child.stdin is not None
    child.stdout.close()  # the supervisor died: nobody reads the pipe any more
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.wait(60) == 0
    assert done.read_text() == "finished"
