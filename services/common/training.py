"""What every family's trainer shares: the job context, progress reporting, cancellation, step counts.

A trainer lives in its family's package and is named in the family's registration; the fine-tune
service runs it through this interface only. ``TrainingSettings`` holds the one knob model builds
share with fine-tuning (its threads), so ``loopline models bootstrap`` needs no fine-tune import."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import LooplineError
from .registry import Registry
from .settings import default_threads


class TrainingSettings(BaseSettings):
    """Training threads (``LOOPLINE_FINETUNE_NUM_THREADS``), read by fine-tune jobs and tiny model builds."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_", extra="ignore")

    num_threads: int = Field(default_factory=default_threads, ge=1, le=256, description="torch/TF threads for training")


class LoraSettings(BaseSettings):
    """A LoRA trainer's adapter targets; a family's settings class adds its prefix
    (``LOOPLINE_FINETUNE_<FAMILY>_LORA_TARGETS``)."""

    lora_targets: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1,
                                    description="modules that get LoRA adapters (JSON list)")


class JobCancelled(Exception):
    """Raised at a step boundary when the job was asked to stop."""


class TrainingError(LooplineError):
    """The job cannot run as asked (bad data, missing base model, no loss network ...)."""

    status, code = 422, "training_error"


class Reporter(Protocol):
    def report(self, progress: dict[str, Any]) -> None: ...

    def cancelled(self) -> bool: ...


class NullReporter:
    def report(self, progress: dict[str, Any]) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class StepTracker:
    """Turns steps into progress dicts (with an ETA) and writes them at most every ``interval_s``."""

    def __init__(self, reporter: Reporter, total: int, interval_s: float, phase: str = "training") -> None:
        self.reporter = reporter
        self.total = total
        self.interval_s = interval_s
        self.phase = phase
        self.started = time.monotonic()
        self._last = 0.0

    def step(self, step: int, loss: float, epoch: int = 0, force: bool = False) -> None:
        if self.reporter.cancelled():
            raise JobCancelled("cancelled by request")
        now = time.monotonic()
        if not force and step < self.total and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = now - self.started
        eta = elapsed / step * (self.total - step) if step else None
        self.reporter.report({"phase": self.phase, "step": step, "total": self.total, "epoch": epoch,
                              "loss": round(float(loss), 6) if math.isfinite(loss) else None,
                              "eta_s": round(eta, 1) if eta is not None else None, "elapsed_s": round(elapsed, 2)})


@dataclass
class Hyper:
    """Resolved hyper-parameters: the job's values over the service defaults."""

    seed: int
    epochs: int
    min_steps: int
    max_steps: int
    batch_size: int
    learning_rate: float | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    holdout_fraction: float
    repeat: int
    image_size: int
    content_weight: float
    style_weight: float

    def steps_for(self, rows: int) -> int:
        per_epoch = math.ceil(rows / self.batch_size)
        return max(1, min(self.max_steps, max(self.min_steps, self.epochs * per_epoch)))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainContext:
    job_id: str
    model: str
    settings: Any  # the fine-tune service's settings (LOOPLINE_FINETUNE_*)
    registry: Registry
    data_dir: Path
    hyper: Hyper
    reporter: Reporter
    # the family's own fine-tune knobs (Task.trainer_settings(): LOOPLINE_FINETUNE_<FAMILY>_*)
    family_settings: Any = None


@dataclass
class Trained:
    """A trained model still in memory: ``write(dir)`` puts its files into a new version."""

    write: Callable[[Path], None]
    kind: str
    framework: str
    base: dict[str, Any] | None
    parent_version: int | None
    train_scores: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer(ABC):
    task: str

    @abstractmethod
    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained: ...

    @abstractmethod
    def evaluate(self, ctx: TrainContext, version: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Scores of registry ``version`` of ``ctx.model`` on ``rows``, as serving would answer."""

    def release(self) -> None:
        """Free what training held (called once the job is done)."""
