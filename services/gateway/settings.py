"""Gateway settings (``LOOPLINE_GATEWAY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import SERVICE_BODY_OVERHEAD, ServiceEndpoint
from services.common.tasks import TASKS

DEFAULT_BACKEND_TIMEOUT_S = 60.0


class GatewaySettings(BaseSettings):
    """Gateway knobs (``LOOPLINE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_GATEWAY_", extra="ignore")

    max_body_bytes: int = Field(
        15 * 1024 * 1024, ge=1024,
        description="largest request body (413 above); each inference service's limit must be >= this x 4/3 + 64 KiB")
    timeout_vqa_s: float = Field(60.0, gt=0, description="backend timeout per task (504 after)")
    timeout_qa_s: float = Field(30.0, gt=0)
    timeout_style_s: float = Field(60.0, gt=0)
    max_inflight: int = Field(32, ge=1, description="requests in flight per task before 503 + Retry-After (load shedding)")
    oip_max_batch: int = Field(64, ge=1, le=1024, description=(
        "items one Open Inference Protocol /v2 infer call may carry (400 above); they reach the batcher together"))
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open a backend's breaker")
    breaker_reset_s: float = Field(2.0, gt=0, description="open breaker lets one probe through after this")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (JSON list); off when empty")
    default_vqa_model: str | None = Field(None, description="VQA model when a request names none (default: the task table's)")
    default_qa_model: str | None = Field(None, description="QA model when a request names none (default: the task table's)")
    default_style: str = Field("mosaic", description="style used when /stylize names none")
    served_index_ttl_s: float = Field(24 * 3600.0, gt=0, description=(
        "answered requests stay findable by every replica for feedback this long, event store up or down"))
    uploads_max_age_s: float = Field(30 * 86400.0, gt=0, description=(
        "uploaded images (kept for learning from feedback) older than this are deleted"))
    uploads_max_bytes: int = Field(5 * 1024**3, ge=0, description=(
        "uploaded images beyond this total are deleted oldest first (they share the volume with the models)"))
    feedback_rate_per_min: float = Field(20.0, gt=0, description=(
        "feedback calls a minute per anonymous sender (X-Client-Id, else source address); 429 + Retry-After above"))
    feedback_burst: int = Field(20, ge=1, description="feedback calls an anonymous sender may make at once")
    feedback_address_rate_per_min: float = Field(120.0, gt=0, description=(
        "feedback calls a minute per source address, whatever client ids it sends"))
    feedback_address_burst: int = Field(300, ge=1, description="feedback calls one source address may make at once")
    feedback_trust_rows: int = Field(10_000, ge=100, description=(
        "newest corrections of a model read to tell a new correction's trust state (quorum)"))

    def timeout_of(self, task: str) -> float:
        return float(getattr(self, f"timeout_{task}_s", DEFAULT_BACKEND_TIMEOUT_S))

    def default_model_of(self, task: str) -> str | None:
        return getattr(self, f"default_{task}_model", None)

    def default_variant_of(self, task: str) -> str | None:
        """A family with one model per variant: the variant a request that names none gets."""
        return getattr(self, f"default_{task}", None)

    def check_backend_limits(self) -> None:
        """The gateway base64-encodes uploads (+33 %): a body it accepts must fit the service's limit."""
        needed = self.max_body_bytes * 4 // 3 + SERVICE_BODY_OVERHEAD
        for task in TASKS:
            limit = ServiceEndpoint.of(task).body_limit()
            if limit < needed:
                raise ValueError(
                    f"LOOPLINE_GATEWAY_MAX_BODY_BYTES={self.max_body_bytes} needs LOOPLINE_{task.upper()}_MAX_BODY_BYTES "
                    f">= {needed} (x 4/3 for base64 + 64 KiB), but it is {limit}: lower the gateway's or raise the service's")
