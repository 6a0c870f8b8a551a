"""Where a job's training runs. The worker holds one runner and never asks which kind it is.

- :class:`EmbeddedRunner`: in the worker's thread, in this process.
- ``KubernetesRunner`` (``kube.py``): a batch/v1 Job per job; it keeps running when this
  service restarts, so the worker re-attaches to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

from services.common.registry import Registry
from services.common.training import Reporter

from .pipeline import run_job
from .settings import FinetuneSettings
from .store import JobStore


class Runner(Protocol):
    name: str
    survives_restart: bool  # a job keeps running while this process is down: re-attach, do not fail it

    def run(self, job_id: str, request: dict[str, Any], feedback: list[dict[str, Any]],
            cancel: threading.Event, reporter: Reporter) -> dict[str, Any]:
        """Train, publish, score and gate; the job outcome (status, version, alias, gate, data)."""
        ...

    def reattach(self, job_id: str, cancel: threading.Event) -> dict[str, Any]:
        """Follow a job a previous process dispatched, to its outcome."""
        ...

    def cancel(self, job_id: str) -> None:
        """Stop the running job where it runs (the worker has already set ``cancel``)."""
        ...


class EmbeddedRunner:
    name = "embedded"
    survives_restart = False

    def __init__(self, settings: FinetuneSettings, registry: Registry, data_dir: Path) -> None:
        self.settings, self.registry, self.data_dir = settings, registry, Path(data_dir)

    def run(self, job_id: str, request: dict[str, Any], feedback: list[dict[str, Any]],
            cancel: threading.Event, reporter: Reporter) -> dict[str, Any]:
        # cancellation reaches the trainer through the reporter, which watches ``cancel``
        return run_job(job_id, request, settings=self.settings, registry=self.registry, data_dir=self.data_dir,
                       feedback_rows=feedback, reporter=reporter)

    def reattach(self, job_id: str, cancel: threading.Event) -> dict[str, Any]:
        raise RuntimeError("an embedded job dies with its process; there is nothing to re-attach to")

    def cancel(self, job_id: str) -> None:
        """Nothing to do: the trainer sees the cancel event at its next step."""


def make_runner(settings: FinetuneSettings, store: JobStore, registry: Registry, data_dir: Path,
                state_dir: Path) -> Runner:
    if settings.runner == "kubernetes":
        from .kube import KubernetesRunner

        return KubernetesRunner(settings, store, state_dir)
    return EmbeddedRunner(settings, registry, data_dir)
