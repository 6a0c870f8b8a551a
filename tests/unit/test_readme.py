"""The README documents every setting, exactly as the code defines them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _table_module():
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_settings_table_matches_the_code() -> None:
    module = _table_module()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert module.render_readme(readme) == readme, "run: python scripts/settings_table.py --write-readme"
    for name in module.env_names():
        assert f"`{name}`" in readme


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make up" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
