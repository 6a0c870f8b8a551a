"""One virtual environment per peer server under the bench cache, built from the pinned,
committed ``requirements/<peer>.txt`` (every package ``==``-pinned with its sha256 hashes,
compiled from ``requirements/<peer>.in`` by scripts/lock_peer_dependencies.sh; installed with
``--require-hashes --no-deps``, so a fresh machine gets exactly the same files or fails).

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


def requirement_blocks(peer: str) -> dict[str, str]:
    """``name -> its requirement text`` (the ``name==version`` line with its ``--hash`` lines) from
    the peer's requirements file, names normalised."""
    out: dict[str, str] = {}
    name = ""
    for line in requirements_file(peer).read_text().splitlines():
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        if not line[0].isspace():
            name = _normal(text.split("==", 1)[0].split("[", 1)[0])
            out[name] = text
        elif name:
            out[name] += "\n" + text
    return out


def pins(peer: str) -> dict[str, str]:
    """``name -> version`` of every package in the peer's requirements file (names normalised)."""
    out: dict[str, str] = {}
    for name, block in requirement_blocks(peer).items():
        first = block.splitlines()[0]
        if "==" in first:
            out[name] = first.partition("==")[2].split(";")[0].rstrip("\\ ").strip()
    return out


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def overlay_packages(peer: str) -> list[str]:
    """The peer's pins that this interpreter's environment lacks or holds at another version."""
    from importlib.metadata import distributions

    here = {_normal(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}
    return [f"{name}=={version}" for name, version in pins(peer).items() if here.get(name) != version]


def overlay_requirements(peer: str) -> str:
    """The requirement blocks (with their hashes) of ``overlay_packages``."""
    blocks = requirement_blocks(peer)
    return "".join(blocks[spec.partition("==")[0]] + "\n" for spec in overlay_packages(peer))


def ensure_env(peer: str, cache_dir: Path, progress: Callable[[str], None] = print, overlay: bool = False) -> Path:
    """The peer's environment, built when missing; returns its Python.

    ``overlay`` (the test suite's smoke, where a full build would cost minutes): when no full
    environment exists, build a small one holding only the pins this environment lacks or has
    at another version, and let it see this environment's packages (torch, transformers...)
    after its own through a ``.pth`` file. Same versions where it matters, a fraction of the
    install; ``make bench`` always builds the full one.
    """
    python = env_python(peer, cache_dir)
    if python is not None:
        return python
    root = env_dir(peer, cache_dir)
    if overlay:
        root = root.with_name(root.name + "-overlay")
        if (root / ".complete").exists():
            return root / "bin" / "python"
    progress(f"peers: building the {peer} environment in {root} (once; pinned by {requirements_file(peer)}"
             f"{', overlay' if overlay else ''})")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    if overlay:
        import site
        import sysconfig

        target = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
        (target / "zz-shared-project-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    requirements = requirements_file(peer)
    if overlay:
        requirements = root / "overlay-requirements.txt"
        requirements.write_text(overlay_requirements(peer))
    log = root / "install.log"
    with log.open("wb") as out:
        done = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                               "--no-input", "--no-deps", "--require-hashes", *(torch_source() if not overlay else []),
                               "-r", str(requirements)],
                              stdout=out, stderr=subprocess.STDOUT) if requirements.read_text().strip() \
            else subprocess.CompletedProcess([], 0)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"pip could not build the {peer} environment (see {log}):\n{tail}")
    seconds = round(time.monotonic() - started, 1)
    (root / ".complete").write_text(json.dumps({"peer": peer, "install_s": seconds, "overlay": overlay}))
    progress(f"peers: {peer} environment built in {seconds} s")
    return root / "bin" / "python"
