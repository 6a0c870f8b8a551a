"""The task table: one entry per model family, read by everything that used to switch on a task name.

A family registers itself through the ``loopline.families`` entry point group: the entry names a
:class:`Task` in the family's own package (``services/vqa/family.py:FAMILY``; a plugin's in its
own distribution). The table is read from the installed distributions' metadata the first time
it is used, so the kernel names no family and a fourth family is one installed package.

A task carries what is light (its name, request and response models, tensor signature, metric)
as values and names what is heavy (runtime, trainer, data adapter, tiny builder, hub loader,
compatibility routes) as ``"module:attribute"`` strings inside the family's package, imported
only when used: the gateway never imports torch. A family that gives ``package=__package__``
leaves those strings out: they follow from the package by :data:`CONVENTION`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from .errors import NotFound
from .signatures import Signature

FAMILY_GROUP = "loopline.families"


def load_object(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


# Where a family package's parts are found when its registration does not name them: part ->
# (module in the package, attribute; {Name} is the family's name in CamelCase, qa -> Qa,
# image-caption -> ImageCaption). Optional parts count only when their module exists; the hub
# loader only when the family has a hub checkpoint.
CONVENTION: dict[str, tuple[str, str]] = {
    "runtime": ("runtime", "{Name}Runtime"),
    "trainer": ("trainer", "{Name}Trainer"),
    "data": ("data", "{Name}Data"),
    "tiny_builder": ("build", "build_tiny"),
    "compat": ("compat", "router"),
    "training_settings": ("settings", "{Name}TrainingSettings"),
    "hub_loader": ("runtime", "save_from_hub"),
}
REQUIRED_PARTS = ("runtime", "trainer", "data", "tiny_builder")


def camel_name(name: str) -> str:
    """``qa`` -> ``Qa``, ``image-caption`` -> ``ImageCaption``."""
    return "".join(word.capitalize() for word in re.split(r"[-_]", name))


def conventional_parts(task: Task) -> dict[str, str]:
    """The ``"module:attribute"`` of each part ``task`` leaves empty, where its package has it."""
    if not task.package:
        return {}
    found = {}
    for part, (module, attribute) in CONVENTION.items():
        if getattr(task, part) or (part == "hub_loader" and not task.hub_id):
            continue
        qualified = f"{task.package}.{module}"
        if part in REQUIRED_PARTS or part == "hub_loader" or importlib.util.find_spec(qualified) is not None:
            found[part] = f"{qualified}:{attribute.format(Name=camel_name(task.name))}"
    return found


@dataclass(frozen=True)
class Task:
    name: str
    summary: str
    default_port: int
    framework: Literal["torch", "tensorflow", "python"]  # python: plain Python, no framework
    # the public contract, torch-free: the /v1 request (JSON or multipart) and answer models, and
    # the named tensors of the Open Inference Protocol (services/common/signatures.py)
    request: Any
    response: Any
    signature: Signature
    # the fine-tune gate: the held-out metric and whether higher or lower is better; a family
    # whose metric is a loss shows it fits its data by its training loss falling
    metric: tuple[str, Literal["higher", "lower"]]
    # tiny offline models: registry name -> keyword arguments of ``tiny_builder(out_dir, **kwargs)``
    tiny_models: Mapping[str, Mapping[str, Any]]
    # what a request's answer contributes to its inference event (never image bytes)
    event_output: tuple[str, ...]
    # The family's package (``package=__package__`` in its family.py): the heavy parts below that
    # are left empty are found there by convention (:data:`CONVENTION`); a part named explicitly wins.
    package: str | None = None
    runtime: str = ""  # "module:RuntimeClass" (its ``settings_class`` is the service's settings)
    trainer: str = ""  # "module:TrainerClass" the fine-tune service runs (services/common/training.py)
    data: str = ""  # "module:DataAdapter" that turns datasets, feedback or a job's own inputs into rows
    tiny_builder: str = ""  # "module:function(out_dir, **tiny_models[name])"
    default_model: str | None = None  # the model a request gets when it names none
    model_prefix: str = ""  # e.g. "style-": a request names "mosaic", the registry holds "style-mosaic"
    sample_dataset: str | None = None  # shipped under data/samples: the release gate scores production on it
    learns_from_feedback: bool = True  # corrections in /v1/feedback are training rows (style: free comments)
    hub_id: str | None = None  # real checkpoint fetched by ``loopline models pull``
    hub_loader: str | None = None  # "module:function(hub_id, out_dir)" that saves it
    # other hub checkpoints of the same architecture that ``loopline models pull <hub id>`` accepts
    # (the seeds served Salesforce/blip-vqa-capfilt-large: a ViT-B BLIP like blip-vqa-base)
    hub_aliases: tuple[str, ...] = ()
    # request fields a fine-tune job of this family needs instead of a dataset (style: its images)
    job_inputs: tuple[str, ...] = ()
    world: str | None = None  # the synthetic world its tiny models learn (docs/world.md)
    compat: str | None = None  # "module:router" of the seed project's compatibility routes
    # "module:SettingsClass" of the family's own fine-tune knobs (LOOPLINE_FINETUNE_<FAMILY>_*), if any
    training_settings: str | None = None
    default_variant: str | None = None  # a family with one model per variant: the one a request gets
    # how long the gateway waits for this family's service (LOOPLINE_GATEWAY_<FAMILY>_TIMEOUT_S overrides it)
    gateway_timeout_s: float = 60.0
    # the browser UI's panel: title, button, placeholders, an example (services/gateway/static/js/try.js)
    ui: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part, path in conventional_parts(self).items():
            object.__setattr__(self, part, path)
        missing = [part for part in REQUIRED_PARTS if not getattr(self, part)]
        if missing:
            raise TypeError(f"family {self.name!r} names no {', '.join(missing)}: give package=__package__ "
                            f"(found by convention) or name them as 'module:attribute'")

    @property
    def route(self) -> str:
        """The family's /v1 inference route."""
        return f"/v1/{self.name}"

    @property
    def fits_by_loss(self) -> bool:
        return self.metric[1] == "lower"

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

    def trainer_settings(self) -> Any:
        """The family's fine-tune knobs (``LOOPLINE_FINETUNE_<FAMILY>_*``), or None when it declares none."""
        return load_object(self.training_settings)() if self.training_settings else None

    def trainer_class(self) -> Any:
        return load_object(self.trainer)

    def new_trainer(self) -> Any:
        return self.trainer_class()()

    def data_adapter(self) -> Any:
        return load_object(self.data)()

    def build_tiny(self, model: str, out_dir: Any, **extra: Any) -> Any:
        """Build a tiny model into ``out_dir``; returns what the builder returns (its held-out scores)."""
        return load_object(self.tiny_builder)(out_dir, **dict(self.tiny_models[model]), **extra)

    def event_output_of(self, result: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: result.get(k) for k in self.event_output} if result else {}


class FamilyTable(Mapping[str, Task]):
    """Every registered family by name, read from the ``loopline.families`` entry points on first use."""

    def __init__(self, group: str = FAMILY_GROUP) -> None:
        self.group = group
        self._tasks: dict[str, Task] | None = None

    def _load(self) -> dict[str, Task]:
        if self._tasks is None:
            found: dict[str, Task] = {}
            for entry in sorted(entry_points(group=self.group), key=lambda e: e.name):
                task = entry.load()
                if not isinstance(task, Task) or task.name != entry.name:
                    raise TypeError(f"entry point {entry.name} = {entry.value} in {self.group} must name a Task "
                                    f"called {entry.name!r}")
                found.setdefault(task.name, task)
            if not found:
                raise RuntimeError(f"no model family is registered: install Loopline (pip install -e .) so the "
                                   f"{self.group} entry points are in its metadata")
            self._tasks = dict(sorted(found.items(), key=lambda kv: (kv[1].default_port, kv[0])))
        return self._tasks

    def reload(self) -> None:
        """Forget what was read (tests that install a family)."""
        self._tasks = None

    def __getitem__(self, name: str) -> Task:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


TASKS = FamilyTable()


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


def signature_of(task: str) -> Signature:
    """The family's Open Inference Protocol signature (its named input and output tensors)."""
    return get_task(task).signature
