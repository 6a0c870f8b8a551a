"""requirements.lock against pyproject.toml: the digest `make lock` records, an extra's
requirements, and the agreement check.

`make lock` (scripts/lock_dependencies.sh) writes the digest of pyproject.toml's dependency
tables into the lock's header; `check` reports every way the two disagree, in sentences a person
can act on (tests/unit/test_lockfile.py). The images copy this file beside the lock and run
`requirements` with the plain interpreter to install one extra at the locked versions, so
everything but `check` uses the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

DIGEST_LINE = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.M)
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
PROJECT = "loopline"
# the extras `make install` installs, and so the extras the lock must cover
INSTALLED_EXTRAS = ("all", "dev", "bench")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_tables(pyproject: Path) -> dict:
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    return {"dependencies": project.get("dependencies", []),
            "optional-dependencies": project.get("optional-dependencies", {})}


def digest(pyproject: Path) -> str:
    """sha256 of the dependency tables, independent of formatting and of the rest of the file."""
    body = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def parse_lock(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes) for every package the lock pins."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in lock.read_text().splitlines():
        match = PIN_LINE.match(line)
        if match:
            current = canonical(match.group(1))
            pins[current] = (match.group(2), len(HASH.findall(line)))
        elif current and line.startswith((" ", "\t")):
            version, hashes = pins[current]
            pins[current] = (version, hashes + len(HASH.findall(line)))
        elif not line.startswith((" ", "\t")):
            current = None
    return pins


SPEC_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def requirements(pyproject: Path, extras: tuple[str, ...] = INSTALLED_EXTRAS) -> list[str]:
    """Every requirement `pip install .[extras]` asks for, the project's own extras expanded.

    Standard library only: the images run it before anything is installed (docker/*.Dockerfile).
    """
    tables = dependency_tables(pyproject)
    optional = tables["optional-dependencies"]
    seen: set[str] = set()
    out: list[str] = list(tables["dependencies"])
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra {extra!r}")
        for spec in optional[extra]:
            name, inner = SPEC_NAME.match(spec).groups()
            if canonical(name) == PROJECT:
                todo.extend(e.strip() for e in (inner or "").split(",") if e.strip())
            elif spec not in out:
                out.append(spec)
    return out


def check(pyproject: Path, lock: Path) -> list[str]:
    """Every disagreement between the two, as a sentence; empty when they agree."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    if not lock.exists():
        return [f"{lock.name} is missing: run `make lock`"]
    problems: list[str] = []
    recorded = DIGEST_LINE.search(lock.read_text())
    if not recorded:
        problems.append(f"{lock.name} has no pyproject digest line: regenerate it with `make lock`")
    elif recorded.group(1) != digest(pyproject):
        problems.append(f"pyproject.toml's dependencies changed since {lock.name} was generated: run `make lock`")
    pins = parse_lock(lock)
    for name, (_version, hashes) in sorted(pins.items()):
        if hashes == 0:
            problems.append(f"{name} is pinned without a hash in {lock.name}")
    for spec in requirements(pyproject):
        req = Requirement(spec)
        if req.marker and not req.marker.evaluate():
            continue
        pinned = pins.get(canonical(req.name))
        if pinned is None:
            problems.append(f"{req.name} ({spec}) is required by pyproject.toml but not in {lock.name}")
        elif not req.specifier.contains(Version(pinned[0]), prereleases=True):
            problems.append(f"{req.name}=={pinned[0]} in {lock.name} does not satisfy pyproject.toml's {spec!r}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "digest":
        print(digest(Path(argv[1])))
        return 0
    if len(argv) >= 3 and argv[0] == "requirements":
        print("\n".join(requirements(Path(argv[1]), tuple(argv[2:]))))
        return 0
    if len(argv) == 3 and argv[0] == "check":
        problems = check(Path(argv[1]), Path(argv[2]))
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print("usage: python -m services.ops.lockfile digest PYPROJECT | requirements PYPROJECT EXTRA... "
          "| check PYPROJECT LOCK", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
