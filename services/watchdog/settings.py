"""Watchdog settings (``LOOPLINE_WATCHDOG_*``): the quality policy and the retraining trigger."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WatchdogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_WATCHDOG_", extra="ignore")

    interval_s: float = Field(60.0, gt=0, description="time between passes")
    window_s: float = Field(3600.0, gt=0, description="events looked at per pass")
    min_events: int = Field(20, ge=1, description="fewer events than this: no judgement")
    min_confidence: float = Field(0.75, ge=0, le=1, description="mean confidence below this is a breach (VQA seed: 0.75)")
    max_bad_feedback_rate: float = Field(0.3, ge=0, le=1, description="share of bad ratings above this is a breach")
    min_feedback: int = Field(5, ge=1, description="ratings needed before the bad-feedback rate counts")
    min_feedback_senders: int = Field(3, ge=1, description=(
        "distinct senders who must have rated before the bad-feedback rate counts; the rate is then the share of "
        "senders whose ratings were mostly bad, so one client's flood counts once"))
    max_p95_latency_ms: float = Field(10_000.0, gt=0)
    max_error_rate: float = Field(0.05, ge=0, le=1)
    recovery_margin: float = Field(0.05, ge=0, le=1, description="hysteresis: metrics must be this much better to re-arm")
    cooldown_s: float = Field(3600.0, ge=0, description="no second trigger for a model within this time")
    models: list[str] = Field(default_factory=list, description="models to watch (default: every model with events)")
    trigger: Literal["finetune", "jenkins", "dry-run"] = "finetune"
    jenkins_url: str | None = None
    jenkins_user: str | None = None
    jenkins_token: str | None = None
    jenkins_job: str = "FineTuneModels"
    jenkins_timeout_s: float = Field(10.0, gt=0)
    finetune_timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _jenkins_complete(self) -> WatchdogSettings:
        if self.trigger == "jenkins" and not (self.jenkins_url and self.jenkins_user and self.jenkins_token):
            raise ValueError("trigger=jenkins needs LOOPLINE_WATCHDOG_JENKINS_URL, _JENKINS_USER and _JENKINS_TOKEN")
        return self
