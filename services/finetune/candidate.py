"""The trained model before the gate: staged, scored, then published or quarantined.

A job trains into a staging folder, ``<registry>/.candidates/.tmp-<job>-<hex>``, and the gate
scores it there. Only a candidate that passes becomes a registry version (its files are moved
into ``Registry.create_version``: one rename publishes them). A refused candidate never gets a
version number: it is moved to ``<registry>/.quarantine/<job>`` for inspection (its
``manifest.json`` holds the gate's report), and only the newest
``LOOPLINE_FINETUNE_QUARANTINE_KEEP`` of them are kept (0: deleted at once).

Both folders sit two levels below the registry root, so a LoRA adapter's base resolves as it
does for a version (``ModelRuntime.base_dir``), and their dot names keep them out of every
registry listing: no alias, promotion or service can reach them. The staging folder is held
with the registry's writer lock, so a crash mid-job leaves a folder that
``Registry.clean_partial`` removes at the next start (a live job's is left alone).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.common.registry import MANIFEST, Registry, VersionRef, fsync_dir, temp_writer, utcnow, write_json_atomic
from services.common.training import Trained

CANDIDATES_DIR = ".candidates"
QUARANTINE_DIR = ".quarantine"
CANDIDATE = 0  # the number the gate scores a candidate under: published versions count from 1


class CandidateView(Registry):
    """The registry plus one unpublished candidate, seen as version ``CANDIDATE`` of its model
    (trainers score ``ctx.registry.version_dir(model, version)`` the same way for both)."""

    def __init__(self, registry: Registry, model: str, folder: Path) -> None:
        super().__init__(registry.root)
        self.model, self.folder = model, folder

    def version_dir(self, model: str, version: int) -> Path:
        if model == self.model and int(version) == CANDIDATE:
            return self.folder
        return super().version_dir(model, version)

    def manifest(self, model: str, version: int) -> dict[str, Any]:
        if model == self.model and int(version) == CANDIDATE:
            path = self.folder / MANIFEST
            if not path.is_file():
                raise NotFound(f"the candidate of {model!r} has no manifest")
            return dict(json.loads(path.read_text(encoding="utf-8")))
        return super().manifest(model, version)


@contextmanager
def staged(registry: Registry, job_id: str) -> Iterator[Path]:
    """A staging folder for one job's candidate, removed when the block ends unless it was moved."""
    with temp_writer(registry.root / CANDIDATES_DIR / f".tmp-{job_id}-{uuid.uuid4().hex[:8]}") as folder:
        yield folder


def write_candidate(folder: Path, model: str, task: str, job_id: str, trained: Trained) -> None:
    """The trained files plus a manifest shaped like a version's (no number: it has none yet)."""
    trained.write(folder)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    write_json_atomic(folder / MANIFEST, {
        "model": model, "task": task, "version": None, "candidate_of_job": job_id, "framework": trained.framework,
        "kind": trained.kind, "base": trained.base, "files": files, "created_at": utcnow(),
        "lineage": {"job": job_id, "parent_version": trained.parent_version}})


def publish(registry: Registry, folder: Path, *, lineage: dict[str, Any], metrics: dict[str, Any],
            extra: dict[str, Any]) -> VersionRef:
    """The next version of the candidate's model, from the candidate's files (moved, not copied)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))

    def move_files(target: Path) -> None:
        for entry in folder.iterdir():
            if entry.name != MANIFEST:
                os.replace(entry, target / entry.name)

    return registry.create_version(manifest["model"], task=manifest["task"], framework=manifest["framework"],
                                   kind=manifest["kind"], write=move_files, base=manifest["base"], lineage=lineage,
                                   metrics=metrics, extra=extra)


def quarantine(registry: Registry, folder: Path, job_id: str, report: dict[str, Any], keep: int) -> Path | None:
    """Keep a refused candidate for inspection (with the gate's report), or drop it when ``keep`` is 0.
    Returns where it is kept; older quarantined candidates beyond ``keep`` are deleted."""
    if keep <= 0:
        return None
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    write_json_atomic(folder / MANIFEST, {**manifest, "refused": {"at": utcnow(), **report}})
    target = registry.root / QUARANTINE_DIR / job_id
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)  # a job run again (re-attached) replaces its own
    os.rename(folder, target)
    fsync_dir(target.parent)
    prune_quarantine(registry, keep)
    return target


def quarantined(registry: Registry) -> list[Path]:
    """Quarantined candidates, oldest first."""
    root = registry.root / QUARANTINE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def prune_quarantine(registry: Registry, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` quarantined candidates; returns what was deleted."""
    found = quarantined(registry)
    removed = found[: max(0, len(found) - max(0, keep))]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
