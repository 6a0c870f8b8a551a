"""Shared helpers for the deployment-artifact tests: paths, tools, manifest loading."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
DOCKER = REPO / "docker"
K8S = REPO / "k8s"
ANSIBLE = REPO / "ansible"
INVENTORIES = sorted(p.name for p in (ANSIBLE / "inventories").iterdir())
SERVICE_DOCKERFILES = sorted(p for p in DOCKER.glob("*.Dockerfile") if p.stem not in ("model", "filebeat", "ci-tools"))
ALL_DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
JENKINSFILES = [REPO / "Jenkinsfile", REPO / "jenkins" / "FineTuneModels.Jenkinsfile"]


def tool(name: str) -> str:
    """A tool from the venv, else from PATH; a missing tool fails the test (never skips)."""
    for candidate in (BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise AssertionError(f"{name} is not installed (see docs/deploy.md, 'What the checks need')")


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # under `make test` the outer make's MAKEFLAGS/MAKELEVEL would make inner makes print directories
    base = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    return subprocess.run(cmd, cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def ansible_env() -> dict[str, str]:
    return {"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-local", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def java_env() -> dict[str, str]:
    """groovy's launcher needs JAVA_HOME when Debian's default-java link is absent."""
    if os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists():
        return {}
    java = shutil.which("java")
    return {"JAVA_HOME": str(Path(java).resolve().parents[1])} if java else {}


# -- Dockerfiles -------------------------------------------------------------------------
def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignore_excludes(rel_path: str, patterns: Iterable[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = rel_path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = _glob_regex(pattern)
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def _glob_regex(pattern: str) -> str:
    """Go filepath.Match plus Docker's '**': '*' stays inside one folder, '**/' spans any."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


# -- Kubernetes manifests ----------------------------------------------------------------
def load_docs(root: Path = K8S) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["_file"] = str(path.relative_to(root))
                docs.append(doc)
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every workload with its namespace and pod template."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append({"kind": d["kind"], "name": d["metadata"]["name"], "namespace": d["metadata"]["namespace"],
                        "template": d["spec"]["template"]})
    return out


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# -- make / Jenkinsfiles -----------------------------------------------------------------
def make_targets() -> set[str]:
    """Targets make knows (Makefile + mk/*.mk), from its own database."""
    result = run(["make", "-pRrq", "-f", "Makefile", "help"], timeout=60)
    targets = set()
    not_target = False
    for line in result.stdout.splitlines():
        if line.startswith("# Not a target"):
            not_target = True
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", line)
        if match and not not_target:
            targets.add(match.group(1))
        not_target = False
    return targets


MAKE_CALL = re.compile(r"\bmake\s+((?:-{1,2}[\w-]+(?:=\S+)?\s+)*)([A-Za-z][\w.-]*)")


def make_calls(groovy_text: str) -> list[str]:
    """The make target of every `make ...` inside sh steps, in order of appearance."""
    calls = []
    for step in re.finditer(r"""\bsh\s*\(?\s*(?:script:\s*)?(['"]{1,3})(.*?)\1""", groovy_text, re.S):
        calls += [m.group(2) for m in MAKE_CALL.finditer(step.group(2))]
    return calls
