"""The QA trainer's own knobs (``LOOPLINE_FINETUNE_QA_*``), named in the registration and read
as ``ctx.family_settings``; the service's settings are ``QaSettings`` in ``runtime.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.training import LoraSettings


class QaTrainingSettings(LoraSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_QA_", extra="ignore")

    mode: Literal["lora", "full"] = Field("lora", description="QA: LoRA adapter or a full fine-tune")
