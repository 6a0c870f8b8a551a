"""One job from data to alias: rows -> split -> train -> publish version -> score -> gate -> alias.

Runs the same in the service's worker thread and in a Kubernetes training pod. The
version is published with one atomic rename (``Registry.create_version``), so a process
killed at any point leaves either no version or a complete one without an alias.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.common.registry import Registry
from services.common.tasks import task_claiming

from .data import Dataset, feedback_dataset, list_images, load_dataset, merge, resolve_dir, split_holdout
from .gate import GatePolicy, decide
from .metrics import public
from .settings import FinetuneSettings
from .trainers import trainer_for
from .trainers.base import Reporter, TrainContext, TrainingError, resolve_hyper

log = logging.getLogger("loopline.finetune.pipeline")


def task_of(registry: Registry, model: str) -> str:
    try:
        return registry.task_of(model)
    except NotFound:
        claimed = task_claiming(model)  # e.g. a new style-<name> becomes a new model
        if claimed is not None:
            return claimed.name
        raise


def gather_rows(task: str, request: dict[str, Any], data_dir: Path, feedback_rows: list[dict[str, Any]]) -> Dataset:
    parts = []
    if request.get("dataset"):
        parts.append(load_dataset(task, data_dir, request["dataset"]))
    if request.get("use_feedback"):
        parts.append(feedback_dataset(task, data_dir, feedback_rows))
    return merge(task, *parts)


UNSTORED_DATA = ("skipped", "corrections", "feedback_ids", "senders")  # job record only; lineage has ids/senders


def used_corrections(feedback_ids: list[str], feedback_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which corrections a job trains on and who sent them (the job record and the lineage)."""
    by_id = {r["feedback_id"]: r for r in feedback_rows}
    corrections = [{"feedback_id": fid, "sender": by_id.get(fid, {}).get("sender"),
                    "correction": by_id.get(fid, {}).get("correction"),
                    "accepted_by": by_id.get(fid, {}).get("trust_by")} for fid in feedback_ids]
    senders: dict[str, int] = {}
    for c in corrections:
        senders[c["sender"] or "unknown"] = senders.get(c["sender"] or "unknown", 0) + 1
    return {"feedback_ids": list(feedback_ids), "corrections": corrections, "senders": senders}


def run_job(job_id: str, request: dict[str, Any], *, settings: FinetuneSettings, registry: Registry, data_dir: Path,
            reporter: Reporter, feedback_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train, publish, score and gate; returns the job outcome (status, version, alias, gate, data)."""
    model = request["model"]
    task = task_of(registry, model)
    hyper = resolve_hyper(settings, request.get("hyperparameters") or {})
    ctx = TrainContext(job_id=job_id, model=model, settings=settings, registry=registry, data_dir=Path(data_dir),
                       hyper=hyper, reporter=reporter)
    trainer = trainer_for(task)
    started = time.monotonic()
    try:
        if task == "style":
            train_rows, held_rows, data = _style_rows(request, Path(data_dir), hyper.holdout_fraction, hyper.seed)
            dataset_sha, feedback_ids = data.pop("sha256"), []
        else:
            dataset = gather_rows(task, request, Path(data_dir), feedback_rows or [])
            if not dataset.rows:
                raise TrainingError("no usable training rows" + (f"; skipped: {dataset.skipped[:5]}" if dataset.skipped else ""))
            train_rows, held_rows = split_holdout(dataset.rows, hyper.holdout_fraction, hyper.seed)
            dataset_sha, feedback_ids = dataset.sha256(), dataset.feedback_ids
            data = {"rows": len(dataset.rows), "train": len(train_rows), "heldout": len(held_rows),
                    "repeat": hyper.repeat, "feedback": len(feedback_ids), "skipped": dataset.skipped,
                    **used_corrections(feedback_ids, feedback_rows or [])}
        reporter.report({"phase": "training"})
        trained = trainer.train(ctx, train_rows * hyper.repeat)
        train_seconds = round(time.monotonic() - started, 2)
        reporter.report({"phase": "publishing"})
        ref = registry.create_version(
            model, task=task, framework=trained.framework, kind=trained.kind, write=trained.write, base=trained.base,
            lineage={"job": job_id, "dataset_sha256": dataset_sha, "feedback_ids": feedback_ids,
                     "feedback_senders": data.get("senders", {}), "parent_version": trained.parent_version},
            extra={"training": {"hyperparameters": hyper.as_dict(), "data": {k: v for k, v in data.items()
                                                                             if k not in UNSTORED_DATA},
                                "dataset": request.get("dataset"), "seconds": train_seconds,
                                **trained.train_scores, **trained.extra}})
        log.info("job %s published %s v%d", job_id, model, ref.version)
        reporter.report({"phase": "evaluating"})
        outcome = _gate(ctx, trainer, ref.version, trained.parent_version, train_rows, held_rows, trained.train_scores,
                        promote=bool(request.get("promote", True)))
    finally:
        trainer.release()
    return {**outcome, "data": data, "train_seconds": train_seconds,
            "total_seconds": round(time.monotonic() - started, 2)}


def _gate(ctx: TrainContext, trainer: Any, version: int, production: int | None, train_rows: list[dict[str, Any]],
          held_rows: list[dict[str, Any]], train_scores: dict[str, Any], promote: bool) -> dict[str, Any]:
    settings, registry, model = ctx.settings, ctx.registry, ctx.model
    new = {"heldout": trainer.evaluate(ctx, version, held_rows)}
    if trainer.task == "style":
        new["train"] = {k: train_scores[k] for k in ("initial_loss", "final_loss")}
    else:
        unique = list({_row_key(r): r for r in train_rows}.values())[: settings.gate_fit_rows]
        new["train"] = trainer.evaluate(ctx, version, unique)
    prod = {"version": production, "heldout": trainer.evaluate(ctx, production, held_rows)} if production else None
    policy = GatePolicy(settings.gate_tolerance, settings.gate_min_improvement, settings.gate_min_train_fit,
                        settings.gate_z, slice_max_drop=settings.gate_slice_max_drop,
                        slice_min_items=settings.gate_slice_min_items)
    decision = decide(trainer.task, new, prod, policy)
    new, prod = public(new), public(prod)
    registry.update_metrics(model, version, {**new, "production": prod, "gate": decision.as_dict(), "job": ctx.job_id})
    alias = None
    if decision.passed and promote:
        actor, reason = f"finetune:{ctx.job_id}", decision.reason
        if registry.resolve(model, "production") is None and settings.promote_new_style:
            registry.promote(model, version, "production", actor=actor, reason=f"first version; {reason}")
            alias = "production"
        else:
            registry.promote(model, version, "canary", weight=settings.canary_weight, actor=actor, reason=reason)
            alias = "canary"
    status = "succeeded" if decision.passed else "rejected"
    log.info("job %s: %s v%d %s", ctx.job_id, model, version, decision.reason)
    return {"status": status, "version": version, "alias": alias,
            "gate": {**decision.as_dict(), "new": new, "production": prod},
            "error": None if decision.passed else decision.reason}


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in row.items() if k != "source"))


def _style_rows(request: dict[str, Any], data_dir: Path, fraction: float, seed: int) -> tuple[list[Any], list[Any], dict[str, Any]]:
    import hashlib

    from services.common.images import resolve_under

    style_path = resolve_under(data_dir, request["style_image"])
    folder = resolve_dir(data_dir, request["content_dir"])
    images = list_images(folder)
    train, held = split_holdout([{"path": str(p.relative_to(data_dir.resolve())), "style": str(style_path)}
                                 for p in images], fraction, seed)
    digest = hashlib.sha256(style_path.read_bytes())
    for p in images:
        digest.update(p.read_bytes())
    return train, held, {"rows": len(images), "train": len(train), "heldout": len(held), "skipped": [],
                         "style_image": request["style_image"], "content_dir": request["content_dir"],
                         "sha256": digest.hexdigest()}
