from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def module_data(tmp_path_factory: pytest.TempPathFactory, tiny_registry_template: Path) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(SAMPLES, root / "samples")
    shutil.copytree(tiny_registry_template, root / "registry")
    (root / "state").mkdir()
    yield root


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")
