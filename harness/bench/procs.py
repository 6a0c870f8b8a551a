"""Servers under test as child processes on free 127.0.0.1 ports, with RSS sampling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment minus its LOOPLINE_* values, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env.update({"LOOPLINE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "LOOPLINE_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """One server: ``argv`` is run with ``{port}`` filled in; its log goes to ``log_path``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([a.format(port=self.port) for a in self.argv], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, path: str = "/readyz", timeout_s: float = 300.0) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(self.url + path, timeout=5.0)
                if response.status_code == 200:
                    return self
                last = f"{response.status_code} {response.text[:200]}"
                self._raise_if_load_failed()
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s ({last}):\n{self.log_tail()}")

    def _raise_if_load_failed(self) -> None:
        """A serving app that could not load its model will never be ready: say so now."""
        try:
            response = httpx.get(self.url + "/v1/versions", timeout=5.0)
            failed = response.json().get("failed") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return
        if failed:
            raise RuntimeError(f"{self.name} could not load {failed}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def serve_argv(service: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", "serve", service, "--port", "{port}"]


def uvicorn_argv(factory: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", "{port}",
            "--no-access-log", "--log-level", "warning"]


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssSampler:
    """Peak RSS of some processes while a block runs (sampled every ``interval_s``). A sample walks
    the whole process table (psutil's ``children``: about 1.4 ms here), and on two cores that time is
    taken from the server being measured, so the interval is 0.25 s: a loaded model's memory stays
    at its peak for the seconds a cell lasts."""

    def __init__(self, pids: Mapping[str, int], interval_s: float = 0.25) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.peak: dict[str, int] = {name: 0 for name in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], tree_rss(pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
