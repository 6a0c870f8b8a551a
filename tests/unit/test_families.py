"""Families are plugins: each registers through the ``loopline.families`` entry point, everything
else learns it from the task table, and nothing outside a family's package names a family."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from services.common.tasks import FAMILY_GROUP, TASKS, Task

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
# string constants equal to a family's name that may stand outside its package, each with its
# reason (none today: a family's name reaches the rest of the code through the task table only)
ALLOWED_LITERALS: dict[tuple[str, str], str] = {}


def family_literals(root: Path, families: tuple[str, ...]) -> list[tuple[str, int, str]]:
    """(file, line, name) of every string constant equal to a family's name in services/, outside
    the families' own packages."""
    found = []
    for path in sorted((root / "services").rglob("*.py")):
        rel = path.relative_to(root)
        if len(rel.parts) > 2 and rel.parts[1] in families:
            continue  # a family's own package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in families:
                found.append((rel.as_posix(), node.lineno, node.value))
    return found


def test_no_family_name_literal_outside_the_family_packages() -> None:
    found = family_literals(ROOT, tuple(TASKS))
    unexpected = [f"{path}:{line}: {name!r}" for path, line, name in found if (path, name) not in ALLOWED_LITERALS]
    assert not unexpected, ("a family's name outside its package (ask the task table instead):\n"
                            + "\n".join(unexpected))
    assert len(found) == len(ALLOWED_LITERALS) == 0


def test_the_literal_counter_finds_a_planted_name(tmp_path: Path) -> None:
    (tmp_path / "services" / "gateway").mkdir(parents=True)
    (tmp_path / "services" / "vqa").mkdir()
    (tmp_path / "services" / "gateway" / "routes.py").write_text('ROUTES = {"/v1/vqa": "vqa"}\nX = "qa-like"\n')
    (tmp_path / "services" / "vqa" / "family.py").write_text('NAME = "vqa"\n')
    assert family_literals(tmp_path, ("vqa", "qa")) == [("services/gateway/routes.py", 1, "vqa")]


def test_the_ui_names_no_family() -> None:
    """The browser UI draws its panels, filters and colours from GET /v1/families."""
    names = "|".join(map(re.escape, TASKS))
    pattern = re.compile(rf"[\"'`]({names})[\"'`]|\b({names})-(panel|form|choice|image|question|context|preview|example)\b"
                         rf"|task-({names})\b")
    static = ROOT / "services" / "gateway" / "static"
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in sorted(static.rglob("*"))
            if p.suffix in (".js", ".html", ".css")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_the_built_in_families_register_through_the_entry_point() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][FAMILY_GROUP]
    installed = {e.name: e.value for e in entry_points(group=FAMILY_GROUP)}
    assert installed.items() >= declared.items(), "pip install -e . refreshes the installed entry points"
    assert set(declared) <= set(TASKS)
    for name in declared:
        task = TASKS[name]
        assert isinstance(task, Task) and task.name == name
        module = task.runtime.partition(":")[0]
        assert module.startswith(f"services.{name}."), "a family's parts live in its own package"
        for part in (task.trainer, task.data, task.tiny_builder, task.compat or module):
            assert part.startswith(f"services.{name}."), part


def test_a_family_declares_its_own_fine_tune_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainer knobs live in the family's package under LOOPLINE_FINETUNE_<FAMILY>_; names users
    already set before the move keep working."""
    for name in ("vqa", "qa", "style"):
        assert str(TASKS[name].training_settings).startswith(f"services.{name}."), TASKS[name].training_settings
    monkeypatch.setenv("LOOPLINE_FINETUNE_QA_MODE", "full")
    monkeypatch.setenv("LOOPLINE_FINETUNE_VQA_LORA_TARGETS", '["query"]')
    assert TASKS["qa"].trainer_settings().mode == "full"
    assert TASKS["vqa"].trainer_settings().lora_targets == ["query"]
    style = TASKS["style"]
    assert style.trainer_settings().vgg19_weights is None
    monkeypatch.setenv("LOOPLINE_FINETUNE_VGG19_WEIGHTS", "/old/vgg19.h5")  # the name before the move
    assert str(style.trainer_settings().vgg19_weights) == "/old/vgg19.h5"
    monkeypatch.setenv("LOOPLINE_FINETUNE_STYLE_VGG19_WEIGHTS", "/new/vgg19.h5")  # the canonical name wins
    assert str(style.trainer_settings().vgg19_weights) == "/new/vgg19.h5"
    monkeypatch.setenv("LOOPLINE_FINETUNE_VQA_LORA_TARGETS", "[]")
    with pytest.raises(ValueError):
        TASKS["vqa"].trainer_settings()


def test_a_family_s_gateway_knobs_come_from_its_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOOPLINE_GATEWAY_<FAMILY>_* with the family's defaults; the names from before stay accepted
    and the new ones win; a bad value refuses the start."""
    from services.gateway.settings import GatewaySettings

    gateway = GatewaySettings()
    assert [gateway.timeout_of(t) for t in ("vqa", "qa", "style")] == [60.0, 30.0, 60.0]
    assert gateway.default_model_of("vqa") is None and gateway.default_variant_of("style") == "mosaic"
    monkeypatch.setenv("LOOPLINE_GATEWAY_TIMEOUT_QA_S", "5")
    monkeypatch.setenv("LOOPLINE_GATEWAY_DEFAULT_VQA_MODEL", "vqa-old-name")
    monkeypatch.setenv("LOOPLINE_GATEWAY_DEFAULT_STYLE", "sketch")
    gateway = GatewaySettings()
    assert (gateway.timeout_of("qa"), gateway.default_model_of("vqa"), gateway.default_variant_of("style")) == (
        5.0, "vqa-old-name", "sketch")
    monkeypatch.setenv("LOOPLINE_GATEWAY_QA_TIMEOUT_S", "7")
    monkeypatch.setenv("LOOPLINE_GATEWAY_STYLE_DEFAULT_VARIANT", "wave")
    gateway = GatewaySettings()
    assert (gateway.timeout_of("qa"), gateway.default_variant_of("style")) == (7.0, "wave")
    monkeypatch.setenv("LOOPLINE_GATEWAY_QA_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="LOOPLINE_GATEWAY_QA_TIMEOUT_S"):
        GatewaySettings()


def _declare(name: str, package: str | None, **parts: str) -> Task:
    from services.common.signatures import Signature

    return Task(name=name, summary="a test family", default_port=8190, framework="python", request=None,
                response=None, signature=Signature(inputs=(), outputs=()), metric=("accuracy", "higher"),
                tiny_models={}, event_output=(), package=package, **parts)


def test_a_family_package_s_parts_are_found_by_convention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``package=__package__`` finds runtime, trainer, data and builder by their conventional names;
    compat and settings only where their module exists, the hub loader only with a hub id; a part
    named explicitly wins."""
    from services.common.tasks import camel_name

    pkg = tmp_path / "loopline_caption"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text("class ImageCaptionTrainingSettings: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert camel_name("image-caption") == "ImageCaption" and camel_name("qa") == "Qa"
    task = _declare("image-caption", "loopline_caption", tiny_builder="loopline_caption.network:build")
    assert (task.runtime, task.trainer, task.data) == ("loopline_caption.runtime:ImageCaptionRuntime",
                                                       "loopline_caption.trainer:ImageCaptionTrainer",
                                                       "loopline_caption.data:ImageCaptionData")
    assert task.tiny_builder == "loopline_caption.network:build"  # named: not overridden
    assert task.training_settings == "loopline_caption.settings:ImageCaptionTrainingSettings"
    assert task.compat is None and task.hub_loader is None  # no compat.py, no hub checkpoint
    with_hub = _declare("image-caption", "loopline_caption", hub_id="org/captioner")
    assert with_hub.hub_loader == "loopline_caption.runtime:save_from_hub"
    # the built-in families use the convention too, and every part it names exists
    for family in TASKS.values():
        for part in ("runtime", "trainer", "data", "tiny_builder", "compat", "training_settings", "hub_loader"):
            path = getattr(family, part)
            if path:
                module, _, attribute = path.partition(":")
                assert hasattr(__import__(module, fromlist=[attribute]), attribute), f"{family.name}.{part}: {path}"


def test_a_family_without_package_or_parts_is_refused() -> None:
    with pytest.raises(TypeError, match=r"names no runtime, trainer, data, tiny_builder.*package=__package__"):
        _declare("orphan", None)
    named = _declare("orphan", None, runtime="m:R", trainer="m:T", data="m:D", tiny_builder="m:b")
    assert (named.runtime, named.compat, named.training_settings) == ("m:R", None, None)
