"""The torch side shared by the VQA and QA trainers: seeding, the optimisation loop, LoRA setup,
and scoring a registry version through its serving runtime (so gate scores are what users get)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .registry import Registry
from .training import StepTracker, TrainContext, TrainingError


def seed_everything(seed: int, threads: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def clipped_step(loss: Any, params: Any, optimiser: Any, schedule: Any = None) -> None:
    """One optimiser step: ``loss``'s gradients, clipped to norm 1, applied; then the schedule's step.
    Every torch training loop takes its steps here (tiny builds and fine-tunes alike)."""
    import torch

    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimiser.step()
    if schedule is not None:
        schedule.step()


def save_untrained(out_dir: Path, seed: int, make: Callable[[], tuple[Any, Any]]) -> None:
    """A loadable checkpoint with random weights: ``make()`` -> (model, tokenizer or processor), seeded."""
    import torch

    torch.manual_seed(seed)
    model, companion = make()
    model.eval().save_pretrained(out_dir)
    companion.save_pretrained(out_dir)


def batches(rows: list[Any], batch_size: int, total_steps: int, seed: int) -> Iterator[tuple[int, int, list[Any]]]:
    """(step, epoch, batch) for ``total_steps`` steps; each epoch a new seeded order."""
    rng = random.Random(seed)
    step, epoch = 0, 0
    while True:
        epoch += 1
        order = list(range(len(rows)))
        rng.shuffle(order)
        for lo in range(0, len(order), batch_size):
            step += 1
            yield step, epoch, [rows[i] for i in order[lo:lo + batch_size]]
            if step >= total_steps:
                return


def optimise(ctx: TrainContext, model: Any, rows: list[Any], loss_of: Callable[[list[Any]], Any],
             default_lr: float, steps_rows: int | None = None) -> list[float]:
    """AdamW over the trainable parameters; returns the loss of every step.

    ``steps_rows``: the row count the step count is derived from (the job's own rows, when
    ``rows`` also holds replayed world rows: replay never makes a job longer than asked)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the model has no trainable parameters (check the LoRA target modules)")
    hp = ctx.hyper
    optimiser = torch.optim.AdamW(params, lr=hp.learning_rate or default_lr, weight_decay=0.0)
    total = hp.steps_for(steps_rows or len(rows))
    tracker = StepTracker(ctx.reporter, total, ctx.settings.progress_interval_s)
    tracker.step(0, float("nan"), force=True)
    losses: list[float] = []
    model.train()
    for step, epoch, batch in batches(rows, hp.batch_size, total, hp.seed):
        loss = loss_of(batch)
        clipped_step(loss, params, optimiser)
        losses.append(float(loss.detach()))
        tracker.step(step, losses[-1], epoch, force=step == total)
    model.eval()
    return losses


def lora_start(registry: Registry, model: str) -> tuple[int, dict[str, Any], Path, Path | None]:
    """Where training starts: (production version, base {model, version}, base dir, adapter dir to continue).

    A production that is itself an adapter is continued (its base stays the base), so a
    second fine-tune builds on the first instead of starting over.
    """
    production = registry.resolve(model, "production")
    if production is None:
        raise TrainingError(f"{model} has no production version to fine-tune")
    manifest = registry.manifest(model, production)
    if manifest.get("kind") == "lora-adapter":
        base = {"model": manifest["base"]["model"], "version": int(manifest["base"]["version"])}
        return production, base, registry.version_dir(base["model"], base["version"]), registry.version_dir(model, production)
    return production, {"model": model, "version": production}, registry.version_dir(model, production), None


def attach_lora(base_model: Any, ctx: TrainContext, targets: list[str], continue_from: Path | None,
                modules_to_save: list[str] | None = None) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    if continue_from is not None:
        return PeftModel.from_pretrained(base_model, str(continue_from), is_trainable=True)
    hp = ctx.hyper
    config = LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                        target_modules=list(targets), modules_to_save=modules_to_save)
    try:
        return get_peft_model(base_model, config)
    except ValueError as exc:  # peft: target modules not found in the model
        raise TrainingError(f"LoRA targets {targets} do not fit this model: {exc}") from None


def runtime_predict(task: str, registry: Registry, data_dir: Path, model: str, version: int,
                    requests: list[dict[str, Any]], batch_size: int = 8) -> list[dict[str, Any]]:
    """Answers of a registry version through the serving runtime (same pre/post-processing as users get)."""
    from .tasks import get_task

    spec = get_task(task)
    runtime_cls = spec.runtime_class()
    runtime = runtime_cls.from_version(registry.version_dir(model, version), spec.settings(warmup=False), data_dir)
    try:
        prepared = [runtime.prepare(runtime_cls.request_model(**r)) for r in requests]
        out: list[dict[str, Any]] = []
        for lo in range(0, len(prepared), batch_size):
            out.extend(runtime.predict(prepared[lo:lo + batch_size]))
        return out
    finally:
        runtime.unload()
