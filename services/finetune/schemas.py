"""Request and response bodies of the jobs API (the gateway's ``/v1/finetune`` proxies them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.tasks import task_claiming

JobStatus = Literal["queued", "running", "succeeded", "rejected", "failed", "cancelled"]
TERMINAL: tuple[str, ...] = ("succeeded", "rejected", "failed", "cancelled")


class Hyperparameters(BaseModel):
    """Every field is optional: unset ones take the service defaults (``LOOPLINE_FINETUNE_*``)."""

    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    epochs: int | None = Field(None, ge=1, le=1000)
    min_steps: int | None = Field(None, ge=1, le=100_000)
    max_steps: int | None = Field(None, ge=1, le=1_000_000)
    batch_size: int | None = Field(None, ge=1, le=1024)
    learning_rate: float | None = Field(None, gt=0, le=1)
    lora_r: int | None = Field(None, ge=1, le=256)
    lora_alpha: int | None = Field(None, ge=1, le=1024)
    holdout_fraction: float | None = Field(None, gt=0, lt=1)
    repeat: int = Field(1, ge=1, le=100, description="use the dataset rows this many times (tiny datasets)")
    image_size: int | None = Field(None, ge=16, le=2048, description="style: training image side")
    content_weight: float | None = Field(None, ge=0)
    style_weight: float | None = Field(None, ge=0)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="registry model, e.g. qa-extractive, vqa-blip, style-mosaic (new styles too)")
    dataset: str | None = Field(None, description=(
        "file under the data root: VQA CSV (image_path,question,answer) or SQuAD JSON"))
    use_feedback: bool = Field(False, description="add feedback corrections recorded for this model's task")
    feedback_since: float | None = Field(None, description="only feedback newer than this (epoch seconds)")
    style_image: str | None = Field(None, description="style: the style image under the data root")
    content_dir: str | None = Field(None, description="style: folder of content images under the data root")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    promote: bool = Field(True, description="alias the version when the gate passes (false: score only)")
    reason: str | None = Field(None, max_length=500, description="why the job was started (recorded)")
    trigger: str = Field("api", max_length=64, description="who started it: api, cli, watchdog, jenkins")

    @model_validator(mode="after")
    def _has_data(self) -> JobRequest:
        claimed = task_claiming(self.model)
        if claimed is not None and claimed.job_inputs:
            missing = [name for name in claimed.job_inputs if not getattr(self, name)]
            if missing:
                raise ValueError(f"a {claimed.name} job needs {' and '.join(claimed.job_inputs)}")
        elif not self.dataset and not self.use_feedback:
            raise ValueError("give a dataset, use_feedback=true, or both")
        return self


class Progress(BaseModel):
    phase: str = "queued"
    step: int = 0
    total: int = 0
    epoch: int = 0
    loss: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0


class JobView(BaseModel):
    """What ``GET /v1/jobs/{id}`` answers."""

    id: str
    model: str
    task: str
    status: JobStatus
    runner: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    request: dict[str, Any]
    progress: Progress
    version: int | None = Field(None, description="the version this job produced")
    alias: str | None = Field(None, description="alias the version received (canary/production) or null")
    gate: dict[str, Any] | None = Field(None, description="{passed, reason, checks, new, production}")
    data: dict[str, Any] | None = Field(None, description="rows used, held out, skipped (with reasons)")
    error: str | None = Field(None, description="why it failed, was cancelled or was rejected")
    cancel_requested: bool = False
