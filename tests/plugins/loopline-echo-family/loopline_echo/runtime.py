"""The echo runtime: a version is a JSON table of learned answers; any other text comes back in capitals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.runtime import ModelRuntime
from services.common.serving import create_serving_app
from services.common.settings import ServingSettings

from .schemas import NAME, EchoRequest

TABLE = "answers.json"


class EchoSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_ECHO_", extra="ignore")

    port: int = Field(8199, ge=1, le=65535, description="port this service listens on")


class EchoRuntime(ModelRuntime):
    task = NAME
    request_model = EchoRequest
    settings_class = EchoSettings

    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        self.answers = json.loads((Path(version_dir) / TABLE).read_text(encoding="utf-8"))

    def prepare(self, request: EchoRequest) -> str:
        return request.text.strip()

    def predict(self, batch: list[str]) -> list[dict[str, Any]]:
        return [{"answer": self.answers.get(text, text.upper()), "confidence": 1.0 if text in self.answers else 0.5}
                for text in batch]


def write_table(out_dir: Path, answers: dict[str, str]) -> None:
    (Path(out_dir) / TABLE).write_text(json.dumps(answers, sort_keys=True), encoding="utf-8")


def build_tiny(out_dir: Path, progress: Any = None) -> dict[str, Any]:
    write_table(out_dir, {})
    return {"heldout": {"count": 0}}


def create_app() -> FastAPI:
    return create_serving_app(EchoRuntime)
