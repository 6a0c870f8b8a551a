"""A job's folder on the shared volume: what a training pod reads and writes.

``<state>/finetune/jobs/<job>/request.json`` and ``feedback.json`` are frozen at dispatch;
the pod writes ``progress.json`` while training and ``result.json`` at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from services.common.registry import write_json_atomic


def job_dir(state: Path, job_id: str) -> Path:
    return Path(state) / "finetune" / "jobs" / job_id


def write_job_files(state: Path, job_id: str, request: dict[str, Any], feedback: list[dict[str, Any]]) -> Path:
    """What a training pod needs: the request and the feedback rows, frozen at dispatch."""
    folder = job_dir(state, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "request.json", request)
    write_json_atomic(folder / "feedback.json", feedback)
    return folder


def read_json(path: Path) -> Any:
    """The file's JSON, or None while it is missing or half-written by another process."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class FileReporter:
    """Inside the training pod: progress into ``progress.json`` for the service to read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._progress: dict[str, Any] = {}

    def report(self, progress: dict[str, Any]) -> None:
        self._progress = {**self._progress, **progress, "ts": time.time()}
        write_json_atomic(self.folder / "progress.json", self._progress)

    def cancelled(self) -> bool:
        return False
