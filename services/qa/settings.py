"""The QA family's fine-tune knobs (``LOOPLINE_FINETUNE_QA_*``), read by its trainer.

The service's own settings (``LOOPLINE_QA_*``) are ``QaSettings`` in ``runtime.py``; these are
the family's part of the fine-tune service, which learns of them through the task table
(``Task.training_settings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QaTrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_QA_", extra="ignore")

    lora_targets: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1,
                                    description="QA: modules that get LoRA adapters (JSON list)")
    mode: Literal["lora", "full"] = Field("lora", description="QA: LoRA adapter or a full fine-tune")

