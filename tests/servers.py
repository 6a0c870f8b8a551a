"""Start real Loopline services (``loopline serve``) on free 127.0.0.1 ports for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
SERVICE_PORT_SETTING = {"gateway": "GATEWAY", "vqa": "VQA", "qa": "QA", "style": "STYLE", "finetune": "FINETUNE",
                        "watchdog": "WATCHDOG"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", self.name, "--port", str(self.port)],
                                     env=self.env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 120.0, path: str = "/readyz") -> Service:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                last = httpx.get(self.url + path, timeout=2.0)
                if last.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s ({last and last.text}):\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env.update({"LOOPLINE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "LOOPLINE_VQA_NUM_THREADS": "1", "LOOPLINE_QA_NUM_THREADS": "1", "LOOPLINE_STYLE_NUM_THREADS": "1",
                "LOOPLINE_VQA_RELOAD_INTERVAL_S": "0.2", "LOOPLINE_QA_RELOAD_INTERVAL_S": "0.2",
                "LOOPLINE_STYLE_RELOAD_INTERVAL_S": "0.2"})
    env.update(extra)
    return env


def start_service(name: str, data_dir: Path, log_dir: Path, port: int | None = None, **env: str) -> Service:
    port = port or free_port()
    svc = Service(name, port, service_env(data_dir, **env), log_dir / f"{name}-{port}.log")
    return svc.start()
