"""One trainer per task (named in the task table); heavy imports happen when a trainer runs, not at import."""

from __future__ import annotations

from services.common.tasks import get_task

from .base import Trainer


def trainer_for(task: str) -> Trainer:
    trainer: Trainer = get_task(task).trainer_class()()
    return trainer
