"""The one small runtime abstraction every model family implements.

A runtime instance holds one loaded registry version. The serving kernel calls
``prepare`` (validate + decode one request, off the event loop, per request so a bad input
never joins a batch), then ``predict`` on a batch of prepared items, always from the one
model thread, so a runtime needs no locking of its own.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from .settings import ServingSettings


class ModelInfo(BaseModel):
    """Which model and version answered (every family's /v1 answer carries it)."""

    name: str
    task: str
    version: int


class PredictRequest(BaseModel):
    """Fields every task's request may carry besides its inputs."""

    model: str | None = None
    version: int | None = None


class ModelRuntime(ABC):
    task: ClassVar[str]
    request_model: ClassVar[type[PredictRequest]]
    settings_class: ClassVar[type[ServingSettings]]

    def __init__(self, settings: ServingSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir

    @classmethod
    def model_name(cls, request: Any) -> str | None:
        """Which registry model a request asks for (None: the service's default)."""
        return getattr(request, "model", None)

    @staticmethod
    def configure_threads(settings: ServingSettings) -> None:
        """Called once per process before the first load (framework thread pools)."""

    def prepare(self, request: Any) -> Any:
        """Validate and decode one request; raise a 4xx :class:`LooplineError` for bad input."""
        return request

    @abstractmethod
    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        """Load one registry version (``manifest`` is its manifest.json, already verified)."""

    def warmup(self) -> None:
        """Run one tiny prediction so the first real request does not pay for lazy init."""

    @abstractmethod
    def predict(self, batch: list[Any]) -> list[Any]: ...

    def unload(self) -> None:
        """Release what ``load`` took (shared base weights are reference-counted)."""

    @classmethod
    def from_version(cls, version_dir: Path, settings: ServingSettings, data_dir: Path) -> ModelRuntime:
        """A runtime with one registry version loaded (tools and trainers; the service uses its pool)."""
        runtime = cls(settings, data_dir)
        runtime.load(Path(version_dir), cls.read_manifest(version_dir))
        return runtime

    @staticmethod
    def read_manifest(version_dir: Path) -> dict[str, Any]:
        return json.loads((Path(version_dir) / "manifest.json").read_text(encoding="utf-8"))

    @staticmethod
    def base_dir(version_dir: Path, manifest: dict[str, Any]) -> Path:
        """Directory of the full model a LoRA adapter version sits on."""
        base = manifest.get("base") or {}
        return Path(version_dir).parent.parent / str(base["model"]) / str(int(base["version"]))
