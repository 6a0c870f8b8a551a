"""Helpers for the container layer: the project's podman (scripts/container_engine.sh) and compose."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "scripts" / "container_engine.sh"
SERVICES = ("gateway", "vqa", "qa", "style", "finetune", "watchdog")
TORCH_IMAGES = ("vqa", "qa", "finetune")
BASE_IMAGE = "docker.io/library/python:3.11.13-slim-bookworm"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # under `make test` the outer make's flags would leak into inner makes
    base = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    return {**base, **(extra or {})}


def engine_env() -> dict[str, str]:
    out = subprocess.run([str(ENGINE), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for word in out.replace("export ", "").split():
        key, _, value = word.partition("=")
        env[key] = value.strip("'\"")
    return env


def sh(cmd: list[str], timeout: float = 300, check: bool = True, env: dict[str, str] | None = None,
       cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=clean_env(env), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh([str(ENGINE), "podman", *args], timeout=timeout, check=check)


@functools.lru_cache(maxsize=1)
def image_tag() -> str:
    """Fixed for the session: a commit made while the tests run must not change the tag."""
    return os.environ.get("IMAGE_TAG") or sh(["git", "rev-parse", "--short=12", "HEAD"]).stdout.strip()


def image(name: str) -> str:
    return f"loopline/{name}:{image_tag()}"


def image_size(ref: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def inspect(ref: str) -> dict[str, Any]:
    return json.loads(podman("image", "inspect", ref).stdout)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, interval: float = 1.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - polled until the deadline, reported below
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def have_podman() -> str | None:
    """Why the container layer cannot run here, or None."""
    for tool in ("podman", "docker-compose"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make sysdeps installs it)"
    return None
