"""One trainer per task; heavy imports happen when a trainer runs, not at import."""

from __future__ import annotations

from .base import Trainer


def trainer_for(task: str) -> Trainer:
    if task == "vqa":
        from .vqa import VqaTrainer

        return VqaTrainer()
    if task == "qa":
        from .qa import QaTrainer

        return QaTrainer()
    if task == "style":
        from .style import StyleTrainer

        return StyleTrainer()
    raise ValueError(f"no trainer for task {task!r}")
