"""The tree is the architecture: the kernel imports no service, nothing imports in a cycle,
and every documented setting is read by the service that owns it."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("gateway", "vqa", "qa", "style", "finetune", "watchdog", "ops")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (at module level or inside functions), relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def source_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_the_kernel_imports_no_service_and_no_harness() -> None:
    offenders = []
    for path in source_files("services/common"):
        for imported in imports_of(path):
            if imported.startswith("harness") or any(
                    imported == f"services.{p}" or imported.startswith(f"services.{p}.") for p in SERVICE_PACKAGES):
                offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles_between_modules() -> None:
    files = {module_name(p): p for p in source_files("services", "harness")}
    graph = {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of design
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".") or files[m].name != "__init__.py"}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _reads(folders: tuple[str, ...]) -> tuple[set[str], list[re.Pattern[str]]]:
    """Attribute names read in these folders, and getattr(x, f"...") name patterns."""
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for path in source_files(*folders):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and len(node.args) >= 2 and isinstance(node.args[1], ast.JoinedStr)):
                regex = "".join(re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9]+"
                                for v in node.args[1].values)
                patterns.append(re.compile(regex + "$"))
    return names, patterns


def test_every_documented_setting_is_read_by_its_service() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec and spec.loader
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    owners = {"LOOPLINE_": ("services",), "LOOPLINE_EVENTS_": ("services/common/events",),
              "LOOPLINE_GATEWAY_": ("services/gateway",), "LOOPLINE_WATCHDOG_": ("services/watchdog",),
              "LOOPLINE_FINETUNE_": ("services/finetune",)}
    unread = []
    for prefix, cls in table.settings_classes():
        service = prefix.removeprefix("LOOPLINE_").rstrip("_").lower()
        # an inference service is its runtime package plus the serving kernel that runs it
        folders = owners.get(prefix, (f"services/{service}", "services/common"))
        names, patterns = _reads(folders)
        for field in cls.model_fields:
            if field not in names and not any(p.match(field) for p in patterns):
                unread.append(f"{prefix}{field.upper()} (nothing in {', '.join(folders)} reads .{field})")
    assert not unread, "documented settings nobody reads:\n" + "\n".join(unread)


def test_a_setting_of_another_service_is_not_documented_under_this_one() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec and spec.loader
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    names = set(table.env_names())
    for wrong in ("LOOPLINE_VQA_MAX_SIDE", "LOOPLINE_STYLE_DOC_STRIDE", "LOOPLINE_QA_MAX_NEW_TOKENS",
                  "LOOPLINE_QA_JIT_COMPILE", "LOOPLINE_GATEWAY_EVENT_STORE", "LOOPLINE_GATEWAY_BF16"):
        assert wrong not in names
    assert {"LOOPLINE_STYLE_MAX_SIDE", "LOOPLINE_QA_DOC_STRIDE", "LOOPLINE_VQA_MAX_NEW_TOKENS",
            "LOOPLINE_EVENTS_STORE", "LOOPLINE_STYLE_BF16"} <= names


def test_body_limits_agree_by_default() -> None:
    from services.common.settings import SERVICE_BODY_OVERHEAD, ServingSettings
    from services.gateway.settings import GatewaySettings

    gateway = GatewaySettings()
    service = ServingSettings()
    assert service.max_body_bytes >= gateway.max_body_bytes * 4 // 3 + SERVICE_BODY_OVERHEAD
    gateway.check_backend_limits()  # the defaults pass the start-up check


def test_the_gateway_refuses_a_limit_its_services_cannot_take(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.gateway.settings import GatewaySettings

    monkeypatch.setenv("LOOPLINE_QA_MAX_BODY_BYTES", str(10 * 1024 * 1024))
    with pytest.raises(ValueError, match="LOOPLINE_QA_MAX_BODY_BYTES"):
        GatewaySettings().check_backend_limits()
