"""One job from data to alias: rows -> split -> train -> stage -> score -> gate -> publish -> alias.

Runs the same in the service's worker thread and in a Kubernetes training pod. The trained
model is scored as an unpublished candidate (``candidate.py``); only one that passes the gate
becomes a version, published with one atomic rename (``Registry.create_version``). A refused
candidate never gets a version number (it is quarantined or deleted). A process killed at any
point leaves no version, or a complete one without an alias, plus at most a staging folder that
``Registry.clean_partial`` removes at the next start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.common.errors import NotFound
from services.common.registry import Registry
from services.common.scores import public
from services.common.tasks import get_task, task_claiming
from services.common.training import Reporter, TrainContext, TrainingError

from .candidate import CANDIDATE, CandidateView, publish, quarantine, staged, write_candidate
from .data import Dataset, feedback_dataset, load_dataset, merge, split_holdout
from .gate import GateDecision, GatePolicy, decide
from .settings import FinetuneSettings, resolve_hyper

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
    """Train, score and gate, then publish; returns the job outcome (status, version, alias, gate, data)."""
    model = request["model"]
    task = task_of(registry, model)
    hyper = resolve_hyper(settings, request.get("hyperparameters") or {})
    spec = get_task(task)
    ctx = TrainContext(job_id=job_id, model=model, settings=settings, registry=registry, data_dir=Path(data_dir),
                       hyper=hyper, reporter=reporter, family_settings=spec.trainer_settings())
    trainer = spec.new_trainer()
    started = time.monotonic()
    try:
        # a family whose jobs carry their own inputs (style: a style image and content images)
        own = spec.data_adapter().job_rows(request, Path(data_dir), hyper.holdout_fraction, hyper.seed)
        if own is not None:
            train_rows, held_rows, data = own
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
        with staged(registry, job_id) as folder:
            write_candidate(folder, model, task, job_id, trained)
            reporter.report({"phase": "evaluating"})
            candidate_ctx = replace(ctx, registry=CandidateView(registry, model, folder))
            decision, report = _gate(candidate_ctx, trainer, trained.parent_version, train_rows, held_rows,
                                     trained.train_scores)
            if decision.passed:
                reporter.report({"phase": "publishing"})
                ref = publish(registry, folder, metrics={**report["scores"], "job": job_id},
                              lineage={"job": job_id, "dataset_sha256": dataset_sha, "feedback_ids": feedback_ids,
                                       "feedback_senders": data.get("senders", {}),
                                       "parent_version": trained.parent_version},
                              extra={"training": {"hyperparameters": hyper.as_dict(),
                                                  "data": {k: v for k, v in data.items() if k not in UNSTORED_DATA},
                                                  "dataset": request.get("dataset"), "seconds": train_seconds,
                                                  **trained.train_scores, **trained.extra}})
                log.info("job %s published %s v%d: %s", job_id, model, ref.version, decision.reason)
                outcome = _promote(ctx, ref.version, decision, report, promote=bool(request.get("promote", True)))
            else:
                kept = quarantine(registry, folder, job_id, {"job": job_id, "reason": decision.reason,
                                                             "gate": report["gate"], "senders": data.get("senders", {}),
                                                             "feedback_ids": feedback_ids},
                                  settings.quarantine_keep)
                log.info("job %s: %s candidate refused, %s: %s", job_id, model,
                         f"kept in {kept}" if kept else "deleted", decision.reason)
                where = kept.relative_to(registry.root).as_posix() if kept else None
                outcome = {"status": "rejected", "version": None, "alias": None, "error": decision.reason,
                           "gate": {**report["gate"], "quarantined": where}}
    finally:
        trainer.release()
    return {**outcome, "data": data, "train_seconds": train_seconds,
            "total_seconds": round(time.monotonic() - started, 2)}


def _gate(ctx: TrainContext, trainer: Any, production: int | None, train_rows: list[dict[str, Any]],
          held_rows: list[dict[str, Any]], train_scores: dict[str, Any]) -> tuple[GateDecision, dict[str, Any]]:
    """Score the candidate (``CANDIDATE`` in ``ctx.registry``, a :class:`CandidateView`) and production."""
    settings = ctx.settings
    new = {"heldout": trainer.evaluate(ctx, CANDIDATE, held_rows)}
    if get_task(trainer.task).fits_by_loss:
        new["train"] = {k: train_scores[k] for k in ("initial_loss", "final_loss")}
    else:
        unique = list({_row_key(r): r for r in train_rows}.values())[: settings.gate_fit_rows]
        new["train"] = trainer.evaluate(ctx, CANDIDATE, unique)
    prod = {"version": production, "heldout": trainer.evaluate(ctx, production, held_rows)} if production else None
    policy = GatePolicy(settings.gate_tolerance, settings.gate_min_improvement, settings.gate_min_train_fit,
                        settings.gate_z, slice_max_drop=settings.gate_slice_max_drop,
                        slice_min_items=settings.gate_slice_min_items)
    decision = decide(trainer.task, new, prod, policy)
    new, prod = public(new), public(prod)
    return decision, {"scores": {**new, "production": prod, "gate": decision.as_dict()},
                      "gate": {**decision.as_dict(), "new": new, "production": prod}}


def _promote(ctx: TrainContext, version: int, decision: GateDecision, report: dict[str, Any],
             promote: bool) -> dict[str, Any]:
    """A published version that passed the gate goes to canary (or production for a brand-new style)."""
    settings, registry, model = ctx.settings, ctx.registry, ctx.model
    alias = None
    if promote:
        actor, reason = f"finetune:{ctx.job_id}", decision.reason
        if registry.resolve(model, "production") is None and settings.promote_new_style:
            registry.promote(model, version, "production", actor=actor, reason=f"first version; {reason}")
            alias = "production"
        else:
            registry.promote(model, version, "canary", weight=settings.canary_weight, actor=actor, reason=reason)
            alias = "canary"
    return {"status": "succeeded", "version": version, "alias": alias, "gate": report["gate"], "error": None}


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in row.items() if k != "source"))

