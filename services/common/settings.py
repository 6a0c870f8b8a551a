"""Settings: one pydantic-settings object per service, env prefix ``LOOPLINE_``.

Common values (data root, ports, logging) live in :class:`CommonSettings`; each service
adds its own knobs under ``LOOPLINE_<SERVICE>_``. Everything is validated at start so a
bad value stops the process with a readable message instead of failing later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .tasks import TASKS

DEFAULT_ADMIN_TOKEN = "changeme"


def default_threads(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's ``cpus`` or a Kubernetes CPU limit, rounded up), which affinity does not show."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cores


class CommonSettings(BaseSettings):
    """Values every service shares: where data lives, where each service listens."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="data root: samples, registry, state")
    registry_dir: Path | None = Field(None, description="model registry (default <data_dir>/registry)")
    state_dir: Path | None = Field(None, description="event store, job queue, admin token (default <data_dir>/state)")
    host: str = Field("127.0.0.1", description="interface every service binds to")
    gateway_port: int = Field(8000, ge=1, le=65535, description="gateway port (the UI and the API); "
                              "inference services: LOOPLINE_<TASK>_PORT")
    finetune_port: int = Field(8104, ge=1, le=65535)
    watchdog_port: int = Field(8105, ge=1, le=65535)
    finetune_url: str | None = Field(None, description="fine-tune service base URL")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log threshold")
    log_file: Path | None = Field(None, description="also write the JSON log lines here (Filebeat sidecars read it)")
    log_max_bytes: int = Field(50 * 1024 * 1024, ge=0, description=(
        "rotate log_file at this size (0: never); the log volume holds at most (log_backups + 1) x this"))
    log_backups: int = Field(3, ge=0, description="rotated log files kept beside log_file")
    shutdown_grace_s: float = Field(70.0, gt=0, description=(
        "on SIGTERM, requests in flight get this long to finish (longer than the 60 s backend timeouts)"))
    admin_token: str | None = Field(None, description="bearer token for admin routes; generated under state_dir when unset")
    feedback_quorum: int = Field(3, ge=1, le=1000, description=(
        "a correction without a reviewer key is accepted when this many distinct anonymous senders gave the same "
        "correction to the same served answer of the same model (docs/threat-model.md)"))

    @field_validator("data_dir", "registry_dir", "state_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _fill_paths(self) -> CommonSettings:
        if self.registry_dir is None:
            self.registry_dir = self.data_dir / "registry"
        if self.state_dir is None:
            self.state_dir = self.data_dir / "state"
        if self.admin_token is not None and self.admin_token in ("", DEFAULT_ADMIN_TOKEN):
            raise ValueError("LOOPLINE_ADMIN_TOKEN must not be empty or the default 'changeme'")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("LOOPLINE_ADMIN_TOKEN must be at least 16 characters")
        return self

    @property
    def registry(self) -> Path:
        assert self.registry_dir is not None
        return self.registry_dir

    @property
    def state(self) -> Path:
        assert self.state_dir is not None
        return self.state_dir

    def port_of(self, service: str) -> int:
        if service in TASKS:
            return ServiceEndpoint.of(service).port or TASKS[service].default_port
        if f"{service}_port" not in type(self).model_fields:
            raise ValueError(f"unknown service {service!r}")
        return int(getattr(self, f"{service}_port"))

    def url_of(self, service: str) -> str:
        explicit = ServiceEndpoint.of(service).url if service in TASKS else getattr(self, f"{service}_url", None)
        if explicit:
            return str(explicit).rstrip("/")
        return f"http://{self.host}:{self.port_of(service)}"


SERVICE_BODY_OVERHEAD = 64 * 1024  # JSON field names, question text, ... beside the base64 image


class ServingSettings(BaseSettings):
    """Knobs every inference service has; each runtime's settings class adds its own and sets the
    ``LOOPLINE_<TASK>_`` prefix (e.g. ``services/vqa/runtime.py:VqaSettings``)."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int = Field(8100, ge=1, le=65535, description="port this service listens on")
    url: str | None = Field(None, description="base URL the gateway calls (default http://host:port)")
    max_batch_size: int = Field(8, ge=1, le=256, description="largest batch the batcher forms")
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, description="longest a request waits for batch-mates "
                               "still being prepared (a lone request never waits)")
    max_queue: int = Field(64, ge=1, le=100_000, description="queued requests before 503 + Retry-After")
    request_timeout_s: float = Field(60.0, gt=0, description="longest a request may wait for its answer")
    num_threads: int = Field(default_factory=default_threads, ge=1, le=256, description="framework intra-op threads")
    max_body_bytes: int = Field(
        21 * 1024 * 1024, ge=1024,
        description="largest request body; keep >= the gateway's limit x 4/3 + 64 KiB (the gateway base64-encodes uploads)")
    reload_interval_s: float = Field(1.0, gt=0, description="how often aliases.json is checked")
    model: str | None = Field(None, description="serve only this registry model (default: every model of the task)")
    warmup: bool = Field(True, description="run one tiny prediction after each load, before the version serves")


class ImageInputSettings(BaseSettings):
    max_image_pixels: int = Field(40_000_000, ge=1024, description="decompression-bomb guard")


class QuestionSettings(BaseSettings):
    max_question_chars: int = Field(1000, ge=1, description="longest question accepted (422 above)")


class PrecisionSettings(BaseSettings):
    bf16: Literal["auto", "on", "off"] = Field(
        "auto", description="bf16 compute: auto = on when the CPU has native bf16 (AVX512_BF16 or AMX) and "
                            "bf16 keeps >= 99 % of answers on generated inputs at load; on; off (true/false work too)")
    bf16_check_inputs: int = Field(200, ge=1, le=1024, description="generated inputs the auto bf16 check compares at "
                                   "load (a few hundred: 1 % must be measurable; a failing check stops early)")

    @field_validator("bf16", mode="before")
    @classmethod
    def _bf16_mode(cls, value: object) -> object:
        text = str(value).strip().lower()
        return {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(text, text)


class TorchSettings(PrecisionSettings):
    quantize: Literal["none", "int8"] = Field(
        "none", description="dynamic int8 quantization of Linear layers (opt-in; full versions only, "
                            "not LoRA canaries; accuracy cost in docs/performance.md)")
    backend: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="what runs the model: auto = torch when it serves bf16, else OpenVINO f32 when "
                            "installed (torch fp32's answers, faster; costs a conversion at load and a second "
                            "copy of the weights in memory), else torch fp32; torch; or openvino (pip install "
                            "'loopline[openvino]'; bf16 per the bf16 setting and its agreement check)")
    openvino_cache: bool = Field(
        True, description="keep each version's OpenVINO conversion under <registry>/.openvino-cache (sha256-checked) "
                          "so a reload, a rollback or a new replica reads it instead of converting again")


class ServiceEndpoint(BaseSettings):
    """How other processes reach an inference service: the same ``LOOPLINE_<TASK>_*`` variables the
    service reads, without importing the service (the gateway has no torch)."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int | None = Field(None, ge=1, le=65535)
    url: str | None = None
    max_body_bytes: int | None = Field(None, ge=1024)

    @classmethod
    def of(cls, task: str) -> ServiceEndpoint:
        scoped = type(f"{task.capitalize()}Endpoint", (cls,),
                      {"model_config": SettingsConfigDict(env_prefix=f"LOOPLINE_{task.upper()}_", extra="ignore")})
        return scoped()

    def body_limit(self) -> int:
        return self.max_body_bytes or int(ServingSettings.model_fields["max_body_bytes"].default)
