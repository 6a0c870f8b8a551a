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

TASKS = ("vqa", "qa", "style")
SERVICES = ("gateway", "vqa", "qa", "style", "finetune", "watchdog")
DEFAULT_ADMIN_TOKEN = "changeme"


def default_threads() -> int:
    """Cores this process may use (respects CPU affinity / cgroup pinning)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class CommonSettings(BaseSettings):
    """Values every service shares: where data lives, where each service listens."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="data root: samples, registry, state")
    registry_dir: Path | None = Field(None, description="model registry (default <data_dir>/registry)")
    state_dir: Path | None = Field(None, description="event store, job queue, admin token (default <data_dir>/state)")
    host: str = Field("127.0.0.1", description="interface every service binds to")
    gateway_port: int = Field(8000, ge=1, le=65535, description="port of each service (the UI and API are on the gateway's)")
    vqa_port: int = Field(8101, ge=1, le=65535)
    qa_port: int = Field(8102, ge=1, le=65535)
    style_port: int = Field(8103, ge=1, le=65535)
    finetune_port: int = Field(8104, ge=1, le=65535)
    watchdog_port: int = Field(8105, ge=1, le=65535)
    vqa_url: str | None = Field(None, description="VQA service base URL (default http://host:vqa_port)")
    qa_url: str | None = Field(None, description="QA service base URL")
    style_url: str | None = Field(None, description="style service base URL")
    finetune_url: str | None = Field(None, description="fine-tune service base URL")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log threshold")
    log_file: Path | None = Field(None, description="also write the JSON log lines here (Filebeat sidecars read it)")
    admin_token: str | None = Field(None, description="bearer token for admin routes; generated under state_dir when unset")

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
        return int(getattr(self, f"{service}_port"))

    def url_of(self, service: str) -> str:
        explicit = getattr(self, f"{service}_url", None)
        if explicit:
            return str(explicit).rstrip("/")
        return f"http://{self.host}:{self.port_of(service)}"


class ServingSettings(BaseSettings):
    """Knobs of one inference service (``LOOPLINE_VQA_*``, ``LOOPLINE_QA_*``, ``LOOPLINE_STYLE_*``)."""

    model_config = SettingsConfigDict(extra="ignore")

    max_batch_size: int = Field(8, ge=1, le=256, description="largest batch the batcher forms")
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, description="longest a request waits for batch-mates")
    max_queue: int = Field(64, ge=1, le=100_000, description="queued requests before 503 + Retry-After")
    request_timeout_s: float = Field(60.0, gt=0, description="longest a request may wait for its answer")
    num_threads: int = Field(default_factory=default_threads, ge=1, le=256, description="framework intra-op threads")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest request body")
    max_image_pixels: int = Field(40_000_000, ge=1024, description="decompression-bomb guard")
    max_question_chars: int = Field(1000, ge=1)
    max_context_chars: int = Field(100_000, ge=1)
    max_side: int = Field(1024, ge=16, description="style: output longest side")
    reload_interval_s: float = Field(1.0, gt=0, description="how often aliases.json is checked")
    model: str | None = Field(None, description="registry model to serve (vqa/qa); style serves every style-* model")
    doc_stride: int = Field(128, ge=1, description="qa: overlap between context windows")
    max_answer_tokens: int = Field(30, ge=1, description="qa: longest answer span")
    max_seq_len: int | None = Field(None, ge=16, description="qa: window length (default: the model's)")
    max_new_tokens: int = Field(10, ge=1, le=64, description="vqa: longest generated answer")
    bf16: bool = Field(False, description="torch: bf16 autocast on CPUs that have it")
    quantize: Literal["none", "int8"] = Field(
        "none", description="torch: dynamic int8 quantization of Linear layers (opt-in; full versions only, "
                            "not LoRA canaries; accuracy cost in docs/performance.md)")
    jit_compile: bool = Field(False, description="style: XLA-compile the Keras network (tf.function jit_compile)")
    warmup: bool = True


def serving_settings(task: str, **overrides: object) -> ServingSettings:
    """Settings of the ``task`` service, read from ``LOOPLINE_<TASK>_*``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    cls = type(
        f"{task.capitalize()}Settings",
        (ServingSettings,),
        {"model_config": SettingsConfigDict(env_prefix=f"LOOPLINE_{task.upper()}_", extra="ignore")},
    )
    return cls(**overrides)  # type: ignore[arg-type]
