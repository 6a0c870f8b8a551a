"""Fine-tune service settings (``LOOPLINE_FINETUNE_*``): runner, gate policy, defaults, Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.training import Hyper, TrainingSettings


class FinetuneSettings(TrainingSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_", extra="ignore")

    # -- where jobs run ------------------------------------------------------------------
    runner: Literal["embedded", "kubernetes"] = Field(
        "embedded", description="embedded: this service's one worker thread; kubernetes: a batch/v1 Job per job")
    progress_interval_s: float = Field(1.0, gt=0, description="how often progress is written while training")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)

    # -- data ------------------------------------------------------------------------------
    feedback_limit: int = Field(10_000, ge=1, description="most feedback corrections one job reads")

    # -- evaluation gate -------------------------------------------------------------------
    gate_tolerance: float = Field(0.02, ge=0, le=1, description=(
        "held-out: the new version may score at most this much below production (absolute for "
        "accuracy/F1, relative for style loss)"))
    gate_min_improvement: float | None = Field(None, ge=0, le=1, description=(
        "when set, the new version must beat production on the held-out split by at least this much"))
    gate_min_train_fit: float = Field(0.6, ge=0, le=1, description=(
        "the new version must reproduce at least this share of its training answers (VQA accuracy, QA F1): "
        "contradictory data (e.g. shuffled answers) cannot be fitted and is refused"))
    gate_z: float = Field(1.645, ge=0, le=10, description=(
        "no-worse check allows for sampling noise: refuse when mean(new - production) + z * stderr < -tolerance"))
    gate_fit_rows: int = Field(64, ge=1, description="most training rows scored for the fit check")
    gate_slice_max_drop: float = Field(0.10, ge=0, le=1, description=(
        "per slice of the held-out world set (VQA: expected answer, question kind; QA: fact kind) the new version "
        "may score at most this much below production (0.10 = 10 points); the refusal names the slice"))
    gate_slice_min_items: int = Field(10, ge=1, description="slices with fewer held-out items are not judged")
    quarantine_keep: int = Field(5, ge=0, le=1000, description=(
        "a candidate the gate refuses never becomes a registry version; the newest this many are kept for "
        "inspection in the registry's .quarantine folder, one folder per job with the gate's report (0: deleted at once)"))
    canary_weight: float = Field(0.1, ge=0, le=1, description="traffic share of a version that passes the gate")
    promote_new_style: bool = Field(True, description=(
        "a brand-new style-<name> model has no production to protect: make a passing first version production"))

    # -- auto-promotion canary -> production -----------------------------------------------
    auto_promote_after_s: float | None = Field(None, gt=0, description=(
        "promote a canary to production once it has served this long with live quality no worse than "
        "production's (unset: never automatic)"))
    auto_promote_min_requests: int = Field(20, ge=1, description="canary requests needed before a decision")
    auto_promote_tolerance: float = Field(0.02, ge=0, le=1, description=(
        "canary mean confidence may be this much lower, its bad-feedback rate this much higher"))
    auto_promote_check_s: float = Field(60.0, gt=0, description="how often canaries are checked")

    # -- default hyper-parameters (a job may override each) --------------------------------
    seed: int = 0
    epochs: int = Field(3, ge=1, le=1000)
    min_steps: int = Field(200, ge=1, description="small datasets are cycled until at least this many steps")
    max_steps: int = Field(5000, ge=1)
    batch_size: int = Field(8, ge=1, le=1024)
    learning_rate: float | None = Field(None, gt=0, description="default per trainer: LoRA 1e-2... see docs")
    lora_r: int = Field(8, ge=1, le=256)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="share of the rows held out for the gate")
    max_seq_len: int = Field(384, ge=16, description="QA training window (capped by the model)")

    # -- style job defaults (a job may override each; the style trainer's own knobs are
    #    LOOPLINE_FINETUNE_STYLE_* in services/style/settings.py) ---------------------------
    style_image_size: int = Field(256, ge=16, le=2048, description="training crop side for content images")
    style_content_weight: float = Field(1.0, ge=0)
    style_style_weight: float = Field(10.0, ge=0)

    # -- Kubernetes runner -----------------------------------------------------------------
    kube_namespace: str = "loopline-training"
    kube_image: str = "loopline/finetune:dev"
    kube_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    kube_pvc: str = Field("loopline-data", description="claim holding <data> (registry + state), mounted at kube_data_mount")
    kube_data_mount: str = "/data"
    kube_config_map: str | None = Field("loopline-config", description="ConfigMap passed as env (LOOPLINE_*)")
    kube_service_account: str | None = None
    kube_cpu_request: str = "1"
    kube_cpu_limit: str = "2"
    kube_memory_request: str = "2Gi"
    kube_memory_limit: str = "6Gi"
    kube_node_selector: dict[str, str] = Field(default_factory=dict, description=(
        "node labels a fine-tune Job's pod must match (JSON object, e.g. {\"pool\": \"training\"})"))
    kube_image_pull_secret: str | None = Field(
        None, description="docker-registry Secret in the training namespace for a private registry (unset: none)")
    kube_active_deadline_s: int = Field(6 * 3600, ge=60)
    kube_ttl_after_finished_s: int = Field(24 * 3600, ge=0)
    kube_poll_s: float = Field(5.0, gt=0, description="how often a running Job is checked")
    kube_start_timeout_s: float = Field(
        300.0, gt=0, description="a Job pod that cannot pull or start its image this long fails the job (and is deleted)")
    kube_api_url: str | None = Field(None, description="API server URL (unset: in-cluster config, else kubeconfig)")
    kube_token: str | None = Field(None, description="bearer token when kube_api_url is set")
    kube_verify_ssl: bool = True
    kube_ca_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> FinetuneSettings:
        if self.min_steps > self.max_steps:
            raise ValueError("LOOPLINE_FINETUNE_MIN_STEPS must not exceed LOOPLINE_FINETUNE_MAX_STEPS")
        return self


def resolve_hyper(settings: FinetuneSettings, job: dict[str, Any]) -> Hyper:
    def pick(name: str, default: Any) -> Any:
        value = job.get(name)
        return default if value is None else value

    min_steps = pick("min_steps", settings.min_steps)
    max_steps = pick("max_steps", max(settings.max_steps, min_steps))
    return Hyper(seed=pick("seed", settings.seed), epochs=pick("epochs", settings.epochs), min_steps=min(min_steps, max_steps),
                 max_steps=max_steps, batch_size=pick("batch_size", settings.batch_size),
                 learning_rate=pick("learning_rate", settings.learning_rate), lora_r=pick("lora_r", settings.lora_r),
                 lora_alpha=pick("lora_alpha", settings.lora_alpha), lora_dropout=settings.lora_dropout,
                 holdout_fraction=pick("holdout_fraction", settings.holdout_fraction), repeat=pick("repeat", 1),
                 image_size=pick("image_size", settings.style_image_size),
                 content_weight=pick("content_weight", settings.style_content_weight),
                 style_weight=pick("style_weight", settings.style_style_weight))
