"""Gateway settings (``LOOPLINE_GATEWAY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Gateway knobs (``LOOPLINE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_GATEWAY_", extra="ignore")

    max_body_bytes: int = Field(15 * 1024 * 1024, ge=1024, description="largest request body (413 above)")
    timeout_vqa_s: float = Field(60.0, gt=0, description="backend timeout per task (504 after)")
    timeout_qa_s: float = Field(30.0, gt=0)
    timeout_style_s: float = Field(60.0, gt=0)
    max_inflight: int = Field(32, ge=1, description="requests in flight per task before 503 + Retry-After (load shedding)")
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open a backend's breaker")
    breaker_reset_s: float = Field(2.0, gt=0, description="open breaker lets one probe through after this")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (JSON list); off when empty")
    default_vqa_model: str = "vqa-blip"
    default_qa_model: str = "qa-extractive"
    default_style: str = Field("mosaic", description="style used when /stylize names none")
