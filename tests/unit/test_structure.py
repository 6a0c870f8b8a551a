"""The tree is the architecture: the kernel imports no service, the product no tool, nothing
imports in a cycle (modules named by string and entry points count as arrows too), and every
documented setting is read by the service that owns it."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from services.common.tasks import TASKS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("gateway", "vqa", "qa", "style", "finetune", "watchdog", "ops")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports (at module level or inside functions), relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path, root).split(".")
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


# -- hidden arrows: modules named by string and entry points ---------------------------------------
# a string that names one of our modules, "package.module" or "package.module:attribute", is an
# arrow as real as an import: importlib loads it at run time
LOADING_STRING = re.compile(r"^(services|harness)(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")
# arrows that break a layer today and are on their way out, each with its reason; the test fails
# when one of them is gone, so the list only shrinks
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def loading_strings(path: Path) -> set[str]:
    """Module paths a file names in string constants (docstrings are prose, not loading)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose = docstring_nodes(tree)
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in prose and LOADING_STRING.match(node.value)}


def string_target(value: str) -> str:
    """The module a loading string names (``a.b:c`` -> ``a.b``)."""
    return value.partition(":")[0]


def layer(module: str) -> int:
    """0 the kernel, 1 the product's services and CLI, 2 the tools under harness/ (higher may use lower)."""
    if module == "services.common" or module.startswith("services.common."):
        return 0
    return 2 if module.split(".")[0] == "harness" else 1


def service_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" and parts[1] in SERVICE_PACKAGES else None


def arrows(root: Path, folders: tuple[str, ...] = ("services", "harness")) -> list[tuple[str, str, str]]:
    """(from module, to module, how) for every import and every loading string in these folders."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            here = module_name(path, root)
            found += [(here, m, "imports") for m in imports_of(path, root)]
            found += [(here, string_target(s), f"names {s!r}") for s in loading_strings(path)]
    return found


def layer_violations(root: Path) -> list[str]:
    """Arrows that point up a layer: the kernel to a service or a tool, the product to a tool."""
    out = []
    for src, dst, how in arrows(root):
        if (src, dst) in KNOWN_VIOLATIONS or not dst.startswith(("services", "harness")):
            continue
        if layer(src) == 0 and layer(dst) > 0 and (service_package(dst) or layer(dst) == 2):
            out.append(f"{src} {how}: the kernel may not reach {dst}")
        elif layer(src) == 1 and layer(dst) == 2:
            out.append(f"{src} {how}: the product may not reach the tools in {dst} (register through an entry point)")
    return out


def module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def defines(path: Path, name: str) -> bool:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return True
    return False


def unresolved(root: Path, value: str) -> str | None:
    """Why ``package.module[:attribute]`` names nothing in the tree (None when it resolves)."""
    module, _, attribute = value.partition(":")
    path = module_file(root, module)
    if path is None:
        parent, _, leaf = module.rpartition(".")  # "a.b.c" may be attribute c of module a.b
        owner = module_file(root, parent) if parent and not attribute else None
        return None if owner is not None and defines(owner, leaf) else f"no module {module}"
    if attribute and not defines(path, attribute.split(".")[0]):
        return f"{module} defines no {attribute}"
    return None


def entry_point_problems(root: Path) -> list[str]:
    """pyproject's console scripts and entry points: each resolves, the product's scripts stay in
    the product, and a plugin sits at or above the layer of the module that loads its group."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    project = data.get("project", {})
    groups = {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}
    strings = {}
    for path in sorted((root / "services").rglob("*.py")) + sorted((root / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in groups:
                strings.setdefault(node.value, module_name(path, root))
    out = []
    for group, entries in groups.items():
        host = "services.cli" if group == "console_scripts" else strings.get(group)
        if host is None:
            out.append(f"entry-point group {group!r}: no module under services/ or harness/ loads it")
            continue
        for name, target in entries.items():
            where = f"[{group}] {name} = {target!r}"
            why = unresolved(root, target.strip())
            if why:
                out.append(f"{where}: {why}")
            elif group == "console_scripts" and layer(string_target(target)) != 1:
                out.append(f"{where}: the product's command must live in services/ (outside the kernel)")
            elif layer(string_target(target)) < layer(host):
                out.append(f"{where}: a plugin of {host} may not sit in a lower layer")
    return out


def test_no_arrow_points_up_a_layer() -> None:
    """The kernel imports or names no service and no tool; the product imports or names no tool."""
    offenders = layer_violations(ROOT)
    assert not offenders, "\n".join(offenders)


def test_known_layer_violations_still_exist() -> None:
    """The exception list only shrinks: a fixed arrow must leave it."""
    present = {(src, dst) for src, dst, _ in arrows(ROOT)}
    stale = sorted(KNOWN_VIOLATIONS - present)
    assert not stale, f"no longer true, remove from KNOWN_VIOLATIONS: {stale}"


def test_every_loading_string_names_a_real_module() -> None:
    problems = []
    for folder in ("services", "harness"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            problems += [f"{path.relative_to(ROOT)}: {s!r}: {why}" for s in loading_strings(path)
                         if (why := unresolved(ROOT, s))]
    assert not problems, "\n".join(problems)


def test_entry_points_resolve_and_respect_the_layers() -> None:
    problems = entry_point_problems(ROOT)
    assert not problems, "\n".join(problems)
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["loopline.commands"]
    assert {"bench", "reliability", "drift", "redteam"} <= set(tools), "the tools' commands stay under `loopline`"


def test_the_checker_catches_planted_hidden_arrows(tmp_path: Path) -> None:
    """Each rule fails on a tree that breaks it: a string in the kernel, a string in the CLI, a
    dangling string and bad entry points."""
    write = {
        "services/__init__.py": "",
        "services/common/__init__.py": "",
        "services/common/table.py": 'RUNTIME = "services.gateway.app:create_app"\n',
        "services/gateway/__init__.py": "",
        "services/gateway/app.py": "def create_app():\n    return None\n",
        "services/cli.py": ('"""Mentions harness.bench.cli in prose only."""\n'
                            'GROUP = "loopline.commands"\nTOOLS = ("harness.bench.cli",)\n'
                            'GONE = "services.gateway.app:nothing"\n'),
        "harness/__init__.py": "",
        "harness/bench/__init__.py": "",
        "harness/bench/cli.py": "def register(app):\n    return app\n",
        "pyproject.toml": ('[project.scripts]\nloopline = "harness.bench.cli:register"\n'
                           '[project.entry-points."loopline.commands"]\nbench = "harness.bench.cli:missing"\n'
                           '[project.entry-points."loopline.orphans"]\nx = "services.cli:GROUP"\n'),
    }
    for rel, text in write.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    layers = "\n".join(layer_violations(tmp_path))
    assert "services.common.table names 'services.gateway.app:create_app': the kernel may not reach" in layers
    assert "services.cli names 'harness.bench.cli': the product may not reach the tools" in layers
    assert layers.count("\n") == 1, f"the docstring is prose, not an arrow: {layers}"
    assert unresolved(tmp_path, "services.gateway.app:nothing") == "services.gateway.app defines no nothing"
    assert unresolved(tmp_path, "services.nowhere") == "no module services.nowhere"
    assert unresolved(tmp_path, "services.gateway.app:create_app") is None
    entries = "\n".join(entry_point_problems(tmp_path))
    assert "[console_scripts] loopline = 'harness.bench.cli:register': the product's command must live in services/" in entries
    assert "[loopline.commands] bench = 'harness.bench.cli:missing': harness.bench.cli defines no missing" in entries
    assert "entry-point group 'loopline.orphans': no module under services/ or harness/ loads it" in entries


def test_no_import_cycles_between_modules() -> None:
    """Imports and loading strings together (minus the known violations) form no cycle."""
    files = {module_name(p): p for p in source_files("services", "harness")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for src, dst, _ in arrows(ROOT):
        if src in graph and dst in files and dst != src and (src, dst) not in KNOWN_VIOLATIONS:
            graph[src].add(dst)
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
              # the fine-tune service's knobs are read by it, the training kernel and each family's trainer
              "LOOPLINE_FINETUNE_": ("services/finetune", "services/common", *(f"services/{t}" for t in TASKS)),
              # a family's gateway knobs are read by the gateway, its own fine-tune knobs by its trainer
              **{f"LOOPLINE_GATEWAY_{t.upper()}_": ("services/gateway",) for t in TASKS},
              **{f"LOOPLINE_FINETUNE_{t.upper()}_": (f"services/{t}",) for t in TASKS}}
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
