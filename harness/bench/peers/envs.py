"""One virtual environment per peer server under the bench cache, built from the pinned,
committed ``requirements/<peer>.txt`` (every package ``==``-pinned, installed with
``--no-deps`` so a fresh machine gets exactly the same set).

Each peer pins its own FastAPI and pydantic, so none of them can share the project's
environment (which must stay equal to requirements.lock). torch is PyTorch's CPU build,
from the same place ``make install`` takes it: ``TORCH_WHEEL_DIR`` (or a pip find-links
folder holding the wheel) when there is one, else PyTorch's CPU index ``TORCH_INDEX_URL``.
An environment is reused while its requirements file is unchanged (the directory name
carries the file's hash) and is marked complete only after pip succeeded.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PEERS = ("bentoml", "mlserver", "kserve")
REQUIREMENTS = Path(__file__).parent / "requirements"
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"
TORCH_INDEX_URL = "https://download.pytorch.org/whl/cpu"


def requirements_file(peer: str) -> Path:
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; expected one of {', '.join(PEERS)}")
    return REQUIREMENTS / f"{peer}.txt"


def env_dir(peer: str, cache_dir: Path) -> Path:
    digest = hashlib.sha256(requirements_file(peer).read_bytes()).hexdigest()[:10]
    return Path(cache_dir) / "peers" / f"{peer}-{digest}"


def env_python(peer: str, cache_dir: Path) -> Path | None:
    """The peer environment's interpreter when a complete one exists, else None."""
    root = env_dir(peer, cache_dir)
    return root / "bin" / "python" if (root / ".complete").exists() else None


def torch_source() -> list[str]:
    """pip options that find the CPU torch wheel, as the Makefile's TORCH_WHEEL_DIR / TORCH_INDEX_URL do."""
    wheel_dir = os.environ.get("TORCH_WHEEL_DIR")
    if not wheel_dir:
        try:
            links = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                                   capture_output=True, text=True, timeout=30).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            links = []
        wheel_dir = next((d for d in links if glob.glob(os.path.join(d, TORCH_WHEEL))), "")
    if wheel_dir:
        return ["--find-links", wheel_dir]
    return ["--extra-index-url", os.environ.get("TORCH_INDEX_URL", TORCH_INDEX_URL)]


def ensure_env(peer: str, cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """The peer's environment, built when missing; returns its Python."""
    python = env_python(peer, cache_dir)
    if python is not None:
        return python
    root = env_dir(peer, cache_dir)
    progress(f"peers: building the {peer} environment in {root} (once; pinned by {requirements_file(peer)})")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    log = root / "install.log"
    with log.open("wb") as out:
        done = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                               "--no-input", "--no-deps", *torch_source(), "-r", str(requirements_file(peer))],
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"pip could not build the {peer} environment (see {log}):\n{tail}")
    seconds = round(time.monotonic() - started, 1)
    (root / ".complete").write_text(json.dumps({"peer": peer, "install_s": seconds}))
    progress(f"peers: {peer} environment built in {seconds} s")
    return root / "bin" / "python"
