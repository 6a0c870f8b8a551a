"""Gateway settings (``LOOPLINE_GATEWAY_*``)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import SERVICE_BODY_OVERHEAD, ServiceEndpoint
from services.common.tasks import TASKS, Task


class FamilyGatewaySettings(BaseSettings):
    """The gateway's knobs of one family (``LOOPLINE_GATEWAY_<FAMILY>_*``); :func:`family_settings_class`
    derives each family's class from its registration."""

    timeout_s: float


def family_settings_class(task: Task) -> type[FamilyGatewaySettings]:
    """A family's gateway knobs, their defaults from its registration: the backend timeout and the
    model (or, for a family with one model per variant, the variant) a request that names none gets.
    The names from before the knobs were per family (``LOOPLINE_GATEWAY_TIMEOUT_<FAMILY>_S``,
    ``LOOPLINE_GATEWAY_DEFAULT_<FAMILY>_MODEL``, ``LOOPLINE_GATEWAY_DEFAULT_<FAMILY>``) stay accepted."""
    name, prefix = task.name.upper(), f"LOOPLINE_GATEWAY_{task.name.upper()}_"

    def env(field: str, legacy: str) -> AliasChoices:
        return AliasChoices(prefix + field.upper(), f"LOOPLINE_GATEWAY_{legacy}")

    fields: dict[str, Any] = {"timeout_s": Field(task.gateway_timeout_s, gt=0, validation_alias=env(
        "timeout_s", f"TIMEOUT_{name}_S"), description=f"backend timeout of {task.name} requests (504 after); "
        f"also read as LOOPLINE_GATEWAY_TIMEOUT_{name}_S")}
    annotations: dict[str, Any] = {"timeout_s": float}
    if task.model_prefix:
        annotations["default_variant"] = str | None
        fields["default_variant"] = Field(task.default_variant, validation_alias=env("default_variant", f"DEFAULT_{name}"),
                                          description=f"the {task.name} a request gets when it names none; "
                                                      f"also read as LOOPLINE_GATEWAY_DEFAULT_{name}")
    else:
        annotations["default_model"] = str | None
        fields["default_model"] = Field(None, validation_alias=env("default_model", f"DEFAULT_{name}_MODEL"),
                                        description=f"{task.name} model when a request names none (default: the task "
                                                    f"table's); also read as LOOPLINE_GATEWAY_DEFAULT_{name}_MODEL")
    config = SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)
    return type(f"{task.name.capitalize()}GatewaySettings", (FamilyGatewaySettings,),
                {"__annotations__": annotations, "model_config": config, **fields})


class GatewaySettings(BaseSettings):
    """Gateway knobs (``LOOPLINE_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_GATEWAY_", extra="ignore")

    max_body_bytes: int = Field(
        15 * 1024 * 1024, ge=1024,
        description="largest request body (413 above); each inference service's limit must be >= this x 4/3 + 64 KiB")
    max_inflight: int = Field(32, ge=1, description="requests in flight per task before 503 + Retry-After (load shedding)")
    oip_max_batch: int = Field(64, ge=1, le=1024, description=(
        "items one Open Inference Protocol /v2 infer call may carry (400 above); they reach the batcher together"))
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open a backend's breaker")
    breaker_reset_s: float = Field(2.0, gt=0, description="open breaker lets one probe through after this")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (JSON list); off when empty")
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

    # each family's knobs (LOOPLINE_GATEWAY_<FAMILY>_*), read and validated with these at start
    _families: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._families = {name: family_settings_class(task)() for name, task in TASKS.items()}

    def timeout_of(self, task: str) -> float:
        return float(self._families[task].timeout_s)

    def default_model_of(self, task: str) -> str | None:
        return self._families[task].default_model

    def default_variant_of(self, task: str) -> str | None:
        """A family with one model per variant: the variant a request that names none gets."""
        return self._families[task].default_variant

    def check_backend_limits(self) -> None:
        """The gateway base64-encodes uploads (+33 %): a body it accepts must fit the service's limit."""
        needed = self.max_body_bytes * 4 // 3 + SERVICE_BODY_OVERHEAD
        for task in TASKS:
            limit = ServiceEndpoint.of(task).body_limit()
            if limit < needed:
                raise ValueError(
                    f"LOOPLINE_GATEWAY_MAX_BODY_BYTES={self.max_body_bytes} needs LOOPLINE_{task.upper()}_MAX_BODY_BYTES "
                    f">= {needed} (x 4/3 for base64 + 64 KiB), but it is {limit}: lower the gateway's or raise the service's")
