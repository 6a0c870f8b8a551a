"""The release gate (``loopline finetune gate``, the pipeline's eval-gate stage).

Every model whose task ships a sample dataset has its production (and canary) version scored
on it, through the serving runtime, with the task's primary metric (VQA accuracy, QA F1).
A version below the minimum blocks the release: the command exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.registry import Registry
from services.common.tasks import TASKS
from services.common.training import NullReporter, TrainContext

from .data import load_dataset
from .settings import FinetuneSettings, resolve_hyper


@dataclass
class GateRow:
    model: str
    alias: str
    version: int
    metric: str
    score: float
    minimum: float
    rows: int

    @property
    def passed(self) -> bool:
        return self.score >= self.minimum

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}


def release_gate(registry: Registry, data_dir: Path, dataset_dir: str, minimum: float,
                 settings: FinetuneSettings) -> list[GateRow]:
    out: list[GateRow] = []
    for task in TASKS.values():
        if not task.sample_dataset:
            continue
        relative = f"{dataset_dir.rstrip('/')}/{Path(task.sample_dataset).name}"
        rows = load_dataset(task.name, data_dir, relative).rows
        if not rows:
            continue
        trainer, family_settings = task.new_trainer(), task.trainer_settings()
        metric = task.metric[0]
        for model in registry.models_for_task(task.name):
            ctx = TrainContext(job_id="release-gate", model=model, settings=settings, registry=registry,
                               data_dir=data_dir, hyper=resolve_hyper(settings, {}), reporter=NullReporter(),
                               family_settings=family_settings)
            for alias in ("production", "canary"):
                version = registry.resolve(model, alias)
                if version is None:
                    continue
                score = float(trainer.evaluate(ctx, version, rows)[metric])
                out.append(GateRow(model, alias, version, metric, round(score, 4), minimum, len(rows)))
        trainer.release()
    return out
