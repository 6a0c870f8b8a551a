"""Shared pytest fixtures: a tiny-model registry built once per session (never ./data)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"


@pytest.fixture(scope="session")
def tiny_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny models built once; tests copy it so each gets a private registry."""
    from services.common.registry import Registry
    from services.ops.bootstrap import bootstrap_tiny

    root = tmp_path_factory.mktemp("tiny-registry")
    bootstrap_tiny(Registry(root))
    return root


@pytest.fixture
def data_dir(tmp_path: Path, tiny_registry_template: Path) -> Iterator[Path]:
    """A private data root: samples (copied), a tiny registry, an empty state dir."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLES, root / "samples")
    shutil.copytree(tiny_registry_template, root / "registry")
    (root / "state").mkdir()
    yield root
