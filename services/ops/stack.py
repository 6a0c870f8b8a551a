"""``loopline up``: one child process per service on loopback, logs prefixed, clean Ctrl-C.

Children die with their supervisor: each runs in its own session (a Ctrl-C in the terminal
reaches the supervisor only, which stops them in order), so without more a ``loopline up``
killed by SIGKILL or a closed terminal left them running and holding their ports. On Linux the
kernel now sends each child SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``); and the
children's logs never fail their work when the supervisor's end of the pipe is gone
(:func:`services.common.logs.protect_std_streams`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

import httpx
from filelock import FileLock, Timeout

from services.common.settings import CommonSettings
from services.common.tasks import TASKS

STACK_SERVICES = (*TASKS, "finetune", "gateway", "watchdog")
# each family's log prefix gets the next colour (31-37 are the terminal's seven)
COLORS = {"gateway": 36, "finetune": 34, "watchdog": 31,
          **{task: (35, 33, 32, 37)[i % 4] for i, task in enumerate(TASKS)}}


class AlreadyRunning(RuntimeError):
    pass


def port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def available_services() -> list[str]:
    """Services whose entry point exists in this checkout (later issues add more)."""
    from .entrypoints import ENTRYPOINTS, importable

    return [s for s in STACK_SERVICES if s in ENTRYPOINTS and importable(s)]


def _pump(name: str, stream: IO[str], color: bool) -> None:
    prefix = f"\x1b[{COLORS.get(name, 37)}m{name:>8}\x1b[0m | " if color else f"{name:>8} | "
    broken = False
    for line in iter(stream.readline, ""):
        if broken:
            continue  # keep draining: a child blocked on a full pipe would stop serving
        try:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()
        except (OSError, ValueError):  # the terminal went away
            broken = True


PR_SET_PDEATHSIG = 1
# resolved before any fork: a dlopen between fork and exec could wait on a lock another thread held
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int) -> None:
    """``preexec_fn``: ask the kernel to SIGTERM this child when its parent dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def spawn_child(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A service process in its own session, its output piped to us, dying with us."""
    parent = os.getpid()
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: die_with_parent(parent))  # noqa: PLW1509


def run_stack(settings: CommonSettings, services: Sequence[str] | None = None, wait_ready_s: float = 120.0, *,
              serve_argv: Sequence[str]) -> int:
    services = list(services or available_services())
    settings.state.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.state / "stack.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise AlreadyRunning(f"Loopline is already running from {settings.data_dir} "
                             f"(gateway http://{settings.host}:{settings.gateway_port}); stop it with Ctrl-C first") from None
    try:
        busy = [f"{s} :{settings.port_of(s)}" for s in services if port_busy(settings.host, settings.port_of(s))]
        if busy:
            raise AlreadyRunning("ports already in use: " + ", ".join(busy) +
                                 " (another Loopline or another program); set LOOPLINE_<SERVICE>_PORT to move")
        return _supervise(settings, services, wait_ready_s, list(serve_argv))
    finally:
        lock.release()


def _supervise(settings: CommonSettings, services: list[str], wait_ready_s: float, serve_argv: list[str]) -> int:
    env = dict(os.environ, PYTHONUNBUFFERED="1", LOOPLINE_DATA_DIR=str(settings.data_dir))
    color = sys.stdout.isatty()
    children: dict[str, subprocess.Popen[str]] = {}
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    old_int = signal.signal(signal.SIGINT, stop)
    old_term = signal.signal(signal.SIGTERM, stop)
    old_hup = signal.signal(signal.SIGHUP, stop)  # the terminal closed: stop the children cleanly
    try:
        for name in services:
            proc = spawn_child([*serve_argv, name], env)
            children[name] = proc
            threading.Thread(target=_pump, args=(name, proc.stdout, color), daemon=True).start()
        base = f"http://{settings.host}:{settings.gateway_port}"
        ready = _wait_ready(settings, services, wait_ready_s, stopping)
        print(f"\nLoopline {'is up' if ready else 'started (some services still loading)'}:\n"
              f"  UI        {base}/\n  API       {base}/v1/...  (docs {base}/docs)\n"
              f"  health    {base}/healthz   ready {base}/readyz\n  Ctrl-C stops everything.\n", flush=True)
        while not stopping.is_set():
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the stack", flush=True)
                    stopping.set()
                    break
            stopping.wait(0.5)
        return 0 if all(p.poll() in (None, 0, -signal.SIGTERM) for p in children.values()) else 1
    finally:
        _terminate(children)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)


def _wait_ready(settings: CommonSettings, services: list[str], deadline_s: float, stopping: threading.Event) -> bool:
    deadline = time.monotonic() + deadline_s
    pending = set(services)
    while pending and time.monotonic() < deadline and not stopping.is_set():
        for name in list(pending):
            try:
                if httpx.get(f"http://{settings.host}:{settings.port_of(name)}/readyz", timeout=1.0).status_code == 200:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        stopping.wait(0.5)
    return not pending


def _terminate(children: dict[str, subprocess.Popen[str]], grace_s: float = 10.0) -> None:
    for proc in children.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()



