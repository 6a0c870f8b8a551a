"""The model registry: named models, immutable numbered versions, movable aliases.

Layout (see ARCHITECTURE.md)::

    <root>/<model>/<version>/manifest.json   + weights, tokenizer, adapter ...
    <root>/<model>/aliases.json              {"production", "canary", "canary_weight", "history"}

Crash safety: a version is written under ``.tmp-*`` and renamed into place, so a listing
never shows half a version; ``aliases.json`` is written to a temp file, fsynced and
renamed. A per-model file lock serialises read-modify-write of numbers and aliases.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import BadRequest, Conflict, NotFound, RegistryError

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIASES = ("production", "canary")
# what a version's weights need to run: torch, TensorFlow, or plain Python (a family with no framework)
FRAMEWORKS = ("torch", "tensorflow", "python")
MANIFEST = "manifest.json"
ALIASES_FILE = "aliases.json"
LOCK_TIMEOUT_S = 30.0
# a writer holds an exclusive flock on <tmp>.writer while it fills <tmp> (flock reaches across
# NFS clients, so training Jobs and other pods count); a temp folder without one (a writer from
# before this lock) is left alone until it is this old
WRITER_LOCK_SUFFIX = ".writer"
STALE_WITHOUT_LOCK_S = 24 * 3600.0


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write, fsync, rename: readers see the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def temp_writer(tmp: Path) -> Iterator[Path]:
    """Create the temp folder ``tmp`` and hold its writer lock until the block ends; the folder is
    removed at the end unless it was renamed into place. ``Registry.clean_partial`` removes a
    ``.tmp-*`` folder only when no live writer holds its lock."""
    lock = tmp.with_name(tmp.name + WRITER_LOCK_SUFFIX)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        tmp.mkdir()
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)


def writer_alive(tmp: Path, stale_s: float = STALE_WITHOUT_LOCK_S) -> bool:
    """Is someone still writing ``tmp``? Its lock is held, or (no lock file) it is younger than ``stale_s``."""
    lock = tmp.with_name(tmp.name + WRITER_LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        try:
            return (dt.datetime.now().timestamp() - tmp.stat().st_mtime) < stale_s
        except FileNotFoundError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases our lock if we got it
    return False


@dataclass(frozen=True)
class VersionRef:
    model: str
    version: int
    path: Path
    manifest: dict[str, Any]


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------
    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and MODEL_NAME.match(p.name) and self.versions(p.name))

    def versions(self, model: str) -> list[int]:
        mdir = self._model_dir(model)
        if not mdir.is_dir():
            return []
        found = [int(p.name) for p in mdir.iterdir()
                 if p.name.isdigit() and (p / MANIFEST).is_file()]
        return sorted(found)

    def manifest(self, model: str, version: int) -> dict[str, Any]:
        path = self.version_dir(model, version) / MANIFEST
        if not path.is_file():
            raise NotFound(f"model {model!r} has no version {version}")
        return json.loads(path.read_text(encoding="utf-8"))

    def version_dir(self, model: str, version: int) -> Path:
        return self._model_dir(model) / str(int(version))

    def ref(self, model: str, version: int) -> VersionRef:
        return VersionRef(model, int(version), self.version_dir(model, version), self.manifest(model, version))

    def task_of(self, model: str) -> str:
        versions = self.versions(model)
        if not versions:
            raise NotFound(f"no model named {model!r} in the registry")
        return str(self.manifest(model, versions[-1])["task"])

    def models_for_task(self, task: str) -> list[str]:
        return [m for m in self.models() if self.task_of(m) == task]

    def aliases(self, model: str) -> dict[str, Any]:
        path = self._model_dir(model) / ALIASES_FILE
        if not path.is_file():
            return {"production": None, "canary": None, "canary_weight": 0.0, "history": []}
        data = json.loads(path.read_text(encoding="utf-8"))
        data.setdefault("canary", None)
        data.setdefault("canary_weight", 0.0)
        data.setdefault("history", [])
        return data

    def resolve(self, model: str, alias: str = "production") -> int | None:
        value = self.aliases(model).get(alias)
        return int(value) if value is not None else None

    def describe(self, model: str) -> dict[str, Any]:
        versions = self.versions(model)
        return {
            "name": model,
            "task": self.task_of(model),
            "versions": [self.manifest(model, v) for v in versions],
            "aliases": self.aliases(model),
        }

    # -- writing versions -------------------------------------------------------------
    def create_version(
        self,
        model: str,
        *,
        task: str,
        framework: str,
        kind: str = "full",
        write: Callable[[Path], None],
        base: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> VersionRef:
        """Create the next version: ``write(tmpdir)`` fills the files, then one rename publishes it."""
        self._check_name(model)
        if kind not in ("full", "lora-adapter"):
            raise BadRequest(f"kind must be 'full' or 'lora-adapter', not {kind!r}")
        if framework not in FRAMEWORKS:
            raise BadRequest(f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}, not {framework!r}")
        mdir = self._model_dir(model)
        mdir.mkdir(parents=True, exist_ok=True)
        with temp_writer(mdir / f".tmp-{uuid.uuid4().hex}") as tmp:
            return self._publish(model, mdir, tmp, task=task, framework=framework, kind=kind, write=write, base=base,
                                 lineage=lineage, metrics=metrics, extra=extra)

    def _publish(self, model: str, mdir: Path, tmp: Path, *, task: str, framework: str, kind: str,
                 write: Callable[[Path], None], base: dict[str, Any] | None, lineage: dict[str, Any] | None,
                 metrics: dict[str, Any] | None, extra: dict[str, Any] | None) -> VersionRef:
        write(tmp)
        files = {str(p.relative_to(tmp)): sha256_file(p)
                 for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != MANIFEST}
        if not files:
            raise RegistryError("a version must hold at least one file")
        for p in tmp.rglob("*"):
            if p.is_file():
                with p.open("rb") as fh:
                    os.fsync(fh.fileno())
        with self._lock(model):
            existing = self.versions(model)
            if existing and self.task_of(model) != task:
                raise Conflict(f"model {model!r} belongs to task {self.task_of(model)!r}, not {task!r}")
            version = (existing[-1] if existing else 0) + 1
            manifest = {
                "model": model, "task": task, "version": version, "framework": framework,
                "kind": kind, "base": base, "files": files, "metrics": metrics or {},
                "lineage": {"job": None, "dataset_sha256": None, "feedback_ids": [],
                            "parent_version": None, **(lineage or {})},
                "created_at": utcnow(), **(extra or {}),
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            final = self.version_dir(model, version)
            os.rename(tmp, final)
            fsync_dir(mdir)
        return VersionRef(model, version, final, manifest)

    def update_metrics(self, model: str, version: int, metrics: dict[str, Any]) -> None:
        """Evaluation scores are the one thing added after publication (weights stay immutable)."""
        with self._lock(model):
            manifest = self.manifest(model, version)
            manifest["metrics"] = {**manifest.get("metrics", {}), **metrics}
            write_json_atomic(self.version_dir(model, version) / MANIFEST, manifest)

    def clean_partial(self, stale_s: float = STALE_WITHOUT_LOCK_S) -> list[Path]:
        """Remove leftovers of writers that died mid-write (never visible as versions). A folder whose
        writer still holds its lock (a training Job, another pod's OpenVINO conversion) is kept."""
        removed = []
        if self.root.is_dir():
            for mdir in self.root.iterdir():
                if mdir.is_dir():
                    for tmp in mdir.glob(".tmp-*"):
                        if tmp.name.endswith(WRITER_LOCK_SUFFIX) or writer_alive(tmp, stale_s):
                            continue
                        shutil.rmtree(tmp, ignore_errors=True)
                        tmp.with_name(tmp.name + WRITER_LOCK_SUFFIX).unlink(missing_ok=True)
                        removed.append(tmp)
        return removed

    # -- aliases ----------------------------------------------------------------------
    def promote(self, model: str, version: int, alias: str = "production", weight: float | None = None,
                actor: str = "cli", reason: str = "") -> dict[str, Any]:
        if alias not in ALIASES:
            raise BadRequest(f"alias must be one of {', '.join(ALIASES)}, not {alias!r}")
        if weight is not None and not 0.0 <= weight <= 1.0:
            raise BadRequest("canary weight must be between 0 and 1")
        with self._lock(model):
            if int(version) not in self.versions(model):
                raise NotFound(f"model {model!r} has no version {version}")
            data = self.aliases(model)
            entry = {"at": utcnow(), "action": "promote", "alias": alias, "from": data.get(alias),
                     "to": int(version), "actor": actor, "reason": reason}
            data[alias] = int(version)
            if alias == "canary":
                data["canary_weight"] = 0.1 if weight is None else float(weight)
                entry["weight"] = data["canary_weight"]
            elif data.get("canary") == int(version):
                # promoting the canary ends the canary phase
                data["canary"], data["canary_weight"] = None, 0.0
            data["history"].append(entry)
            write_json_atomic(self._model_dir(model) / ALIASES_FILE, data)
            return data

    def clear_canary(self, model: str, actor: str = "cli", reason: str = "") -> dict[str, Any]:
        with self._lock(model):
            data = self.aliases(model)
            if data.get("canary") is None:
                return data
            data["history"].append({"at": utcnow(), "action": "clear", "alias": "canary",
                                    "from": data["canary"], "to": None, "actor": actor, "reason": reason})
            data["canary"], data["canary_weight"] = None, 0.0
            write_json_atomic(self._model_dir(model) / ALIASES_FILE, data)
            return data

    def rollback(self, model: str, actor: str = "cli", reason: str = "") -> dict[str, Any]:
        """Production goes back to the version it held before the current one."""
        with self._lock(model):
            data = self.aliases(model)
            stack = production_stack(data["history"])
            if len(stack) < 2:
                raise Conflict(f"model {model!r} has no earlier production version to roll back to")
            previous = stack[-2]
            data["history"].append({"at": utcnow(), "action": "rollback", "alias": "production",
                                    "from": data.get("production"), "to": previous, "actor": actor,
                                    "reason": reason})
            data["production"] = previous
            write_json_atomic(self._model_dir(model) / ALIASES_FILE, data)
            return data

    # -- integrity --------------------------------------------------------------------
    def verify(self, model: str | None = None, version: int | None = None) -> list[str]:
        """Every problem found, as sentences; an empty list means all files match their sha256."""
        problems: list[str] = []
        for name in [model] if model else self.models():
            versions = [version] if version is not None else self.versions(name)
            for v in versions:
                problems.extend(self.verify_version(name, v))
            aliases = self.aliases(name)
            for alias in ALIASES:
                target = aliases.get(alias)
                if target is not None and target not in self.versions(name):
                    problems.append(f"{name}: alias {alias} points to missing version {target}")
        return problems

    def verify_version(self, model: str, version: int) -> list[str]:
        vdir = self.version_dir(model, version)
        try:
            manifest = self.manifest(model, version)
        except (NotFound, json.JSONDecodeError) as exc:
            return [f"{model} v{version}: unreadable manifest ({exc})"]
        problems = []
        for rel, expected in manifest.get("files", {}).items():
            path = vdir / rel
            if not path.is_file():
                problems.append(f"{model} v{version}: file {rel} is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{model} v{version}: file {rel} does not match its sha256")
        return problems

    # -- internals --------------------------------------------------------------------
    def _model_dir(self, model: str) -> Path:
        self._check_name(model)
        return self.root / model

    @staticmethod
    def _check_name(model: str) -> None:
        if not MODEL_NAME.match(model or ""):
            raise BadRequest(f"invalid model name {model!r}: use lowercase letters, digits, '.', '_' or '-'")

    @contextmanager
    def _lock(self, model: str) -> Iterator[None]:
        mdir = self._model_dir(model)
        mdir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(mdir / ".lock"), timeout=LOCK_TIMEOUT_S):
            yield


def production_stack(history: list[dict[str, Any]]) -> list[int]:
    """Production versions as a stack: promotions push, rollbacks pop."""
    stack: list[int] = []
    for entry in history:
        if entry.get("alias") != "production":
            continue
        if entry.get("action") == "promote":
            stack.append(int(entry["to"]))
        elif entry.get("action") == "rollback" and stack:
            stack.pop()
    return stack
