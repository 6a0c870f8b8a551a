"""The VQA trainer's own knobs (``LOOPLINE_FINETUNE_VQA_*``), named in the registration; the
service's settings are ``VqaSettings`` in ``runtime.py``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.training import LoraSettings


class VqaTrainingSettings(LoraSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_VQA_", extra="ignore")
