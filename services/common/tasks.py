"""The task table: one entry per model family, read by everything that used to switch on a task name.

A task names its runtime (load + predict), its settings class, its tiny offline builder, its
trainer and its hub checkpoint as ``"module:attribute"`` strings that are imported only when
used, so the kernel never imports a service package and the gateway never imports torch.
Adding a model family = one runtime module (with its settings class) + one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import NotFound


def load_object(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    default_port: int
    runtime: str  # "module:RuntimeClass" (its ``settings_class`` is the service's settings)
    trainer: str  # "module:TrainerClass" of the fine-tune service
    framework: Literal["torch", "tensorflow"]
    # tiny offline models: registry name -> keyword arguments of ``tiny_builder(out_dir, **kwargs)``
    tiny_builder: str
    tiny_models: Mapping[str, Mapping[str, Any]]
    # what a request's answer contributes to its inference event (never image bytes)
    event_output: tuple[str, ...]
    default_model: str | None = None  # the model a request gets when it names none
    model_prefix: str = ""  # e.g. "style-": a request names "mosaic", the registry holds "style-mosaic"
    sample_dataset: str | None = None  # shipped under data/samples: the release gate scores production on it
    learns_from_feedback: bool = True  # corrections in /v1/feedback are training rows (style: free comments)
    hub_id: str | None = None  # real checkpoint fetched by ``loopline models pull``
    hub_loader: str | None = None  # "module:function(hub_id, out_dir)" that saves it
    # other hub checkpoints of the same architecture that ``loopline models pull <hub id>`` accepts
    # (the seeds served Salesforce/blip-vqa-capfilt-large: a ViT-B BLIP like blip-vqa-base)
    hub_aliases: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    # -- naming -------------------------------------------------------------------------------
    def model_name(self, requested: str) -> str:
        """Registry name of what a request asks for (``mosaic`` -> ``style-mosaic``)."""
        name = requested.strip().lower() if self.model_prefix else requested
        return name if not self.model_prefix or name.startswith(self.model_prefix) else self.model_prefix + name

    def short_name(self, model: str) -> str:
        """What users call a model (``style-mosaic`` -> ``mosaic``)."""
        return model.removeprefix(self.model_prefix) if self.model_prefix else model

    def claims(self, model: str) -> bool:
        """A not-yet-registered model that would belong to this task by its name (a new style)."""
        return bool(self.model_prefix) and model.startswith(self.model_prefix) and len(model) > len(self.model_prefix)

    # -- lazily imported parts -----------------------------------------------------------------
    def runtime_class(self) -> Any:
        return load_object(self.runtime)

    def settings(self, **overrides: Any) -> Any:
        """This task's service settings (``LOOPLINE_<TASK>_*``), from the runtime's settings class."""
        return self.runtime_class().settings_class(**overrides)

    def trainer_class(self) -> Any:
        return load_object(self.trainer)

    def build_tiny(self, model: str, out_dir: Any, **extra: Any) -> Any:
        """Build a tiny model into ``out_dir``; returns what the builder returns (its held-out scores)."""
        return load_object(self.tiny_builder)(out_dir, **dict(self.tiny_models[model]), **extra)

    def event_output_of(self, result: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: result.get(k) for k in self.event_output} if result else {}


TASKS: dict[str, Task] = {
    "vqa": Task(
        name="vqa", summary="visual question answering (BLIP)", default_port=8101,
        runtime="services.vqa.runtime:VqaRuntime", trainer="services.finetune.trainers.vqa:VqaTrainer",
        framework="torch", tiny_builder="services.vqa.build:build_tiny",
        tiny_models={"vqa-blip": {"seed": 0}}, event_output=("answer",),
        sample_dataset="samples/world-vqa.csv",
        default_model="vqa-blip", hub_id="Salesforce/blip-vqa-base", hub_loader="services.vqa.runtime:save_from_hub",
        hub_aliases=("Salesforce/blip-vqa-capfilt-large",)),
    "qa": Task(
        name="qa", summary="extractive question answering (BERT family)", default_port=8102,
        runtime="services.qa.runtime:QaRuntime", trainer="services.finetune.trainers.qa:QaTrainer",
        framework="torch", tiny_builder="services.qa.build:build_tiny",
        tiny_models={"qa-extractive": {"seed": 0}}, event_output=("answer", "start", "end"),
        sample_dataset="samples/world-qa.json",
        default_model="qa-extractive", hub_id="distilbert-base-cased-distilled-squad",
        hub_loader="services.qa.runtime:save_from_hub", hub_aliases=("distilbert/distilbert-base-cased-distilled-squad",)),
    "style": Task(
        name="style", summary="neural style transfer (Keras TransformerNet), one model per style",
        default_port=8103, runtime="services.style.runtime:StyleRuntime",
        trainer="services.finetune.trainers.style:StyleTrainer", framework="tensorflow",
        tiny_builder="services.style.network:build_tiny",
        tiny_models={"style-mosaic": {"style": "mosaic", "seed": 0},
                     "style-sketch": {"style": "sketch", "seed": 1}},
        event_output=("style", "width", "height"), model_prefix="style-", learns_from_feedback=False),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise NotFound(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def task_settings(task: str, **overrides: Any) -> Any:
    """Settings of the ``task`` service, read from ``LOOPLINE_<TASK>_*`` (overrides win)."""
    return get_task(task).settings(**overrides)


def task_claiming(model: str) -> Task | None:
    """The task a new (unregistered) model name belongs to, if its name says so."""
    return next((t for t in TASKS.values() if t.claims(model)), None)
