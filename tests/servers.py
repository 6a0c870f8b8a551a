"""Start real Loopline services (``loopline serve``) on free 127.0.0.1 ports for tests.

Built on the harness's process helpers (``harness/bench/procs.py``), adding what fault
tests need: kill -9 and the whole log.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness.bench.procs import ServerProcess, child_env, free_port, serve_argv

REPO = Path(__file__).resolve().parent.parent
__all__ = ["REPO", "Service", "free_port", "service_env", "start_service"]


class Service(ServerProcess):
    def wait_ready(self, timeout_s: float = 120.0, path: str = "/readyz") -> Service:  # type: ignore[override]
        super().wait_ready(path=path, timeout_s=timeout_s)
        return self

    def start(self) -> Service:
        super().start()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = child_env(data_dir, {"LOOPLINE_LOG_LEVEL": "INFO",
                               "LOOPLINE_VQA_NUM_THREADS": "1", "LOOPLINE_QA_NUM_THREADS": "1",
                               "LOOPLINE_STYLE_NUM_THREADS": "1", "LOOPLINE_VQA_RELOAD_INTERVAL_S": "0.2",
                               "LOOPLINE_QA_RELOAD_INTERVAL_S": "0.2", "LOOPLINE_STYLE_RELOAD_INTERVAL_S": "0.2"})
    env.update(extra)
    return env


def start_service(name: str, data_dir: Path, log_dir: Path, port: int | None = None, **env: str) -> Service:
    port = port or free_port()
    svc = Service(name, serve_argv(name), service_env(data_dir, **env), log_dir / f"{name}-{port}.log", port=port)
    return svc.start()
