"""The VQA family's fine-tune knobs (``LOOPLINE_FINETUNE_VQA_*``), read by its trainer.

The service's own settings (``LOOPLINE_VQA_*``) are ``VqaSettings`` in ``runtime.py``; these are
the family's part of the fine-tune service, which learns of them through the task table
(``Task.training_settings``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class VqaTrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_VQA_", extra="ignore")

    lora_targets: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1,
                                    description="VQA: modules that get LoRA adapters (JSON list)")

