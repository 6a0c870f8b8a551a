"""What each speed option costs in answers: agreement with fp32 on generated in-world inputs.

Inputs come from the synthetic worlds (``services/vqa/world/shapes.py`` scenes and questions for
VQA, ``facts.py`` facts for QA, shapes scenes at 128 px for style), as many as asked (a few
hundred per task by default, not the 6-12 rows of ``data/samples``), through each runtime's
own ``agreement_inputs`` (the inputs its load-time bf16 check uses, at a larger count). The
benchmark models have random weights, so agreement with the fp32 answer of the same model is
the telling figure (near-ties between logits make it a harsh test); an option that changes
more than 1 % of answers is not on by default (``AGREEMENT_FLOOR``).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from services.common.tasks import get_task, task_settings
from services.common.torch_shared import AGREEMENT_FLOOR

from .models import MODEL_OF_TASK

VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "vqa": {"fp32": {"bf16": "off", "backend": "torch"}, "bf16": {"bf16": "on", "backend": "torch"},
            "int8": {"quantize": "int8", "backend": "torch"},
            "openvino_f32": {"bf16": "off", "backend": "openvino"}},
    "qa": {"fp32": {"bf16": "off", "backend": "torch"}, "bf16": {"bf16": "on", "backend": "torch"},
           "int8": {"quantize": "int8", "backend": "torch"},
           # what backend=auto serves when torch's bf16 is refused (only where OpenVINO is installed)
           "openvino_f32": {"bf16": "off", "backend": "openvino"}},
    "style": {"fp32": {"bf16": "off"}, "bf16": {"bf16": "on"}},  # Keras mixed_bfloat16
}
BATCH = 8


def _pixels(answer: dict[str, Any]) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["image_b64"]))))


def _answers(task: str, version_dir: Path, overrides: dict[str, Any], count: int, threads: int) -> list[dict[str, Any]]:
    runtime = get_task(task).runtime_class()(task_settings(task, warmup=False, num_threads=threads, **overrides),
                                            Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    try:
        items = list(runtime.agreement_inputs(count))
        return [a for lo in range(0, len(items), BATCH) for a in runtime.predict(items[lo:lo + BATCH])]
    finally:
        runtime.unload()


def _agree(task: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    if task == "style":
        from services.style.runtime import image_agreement

        return image_agreement(_pixels(a)[None], _pixels(b)[None]) == 1.0
    return bool(a["answer"] == b["answer"])


def precision_cost(registries: dict[str, Path], count: int, threads: int,
                   tasks: tuple[str, ...] = ("vqa", "qa", "style")) -> dict[str, Any]:
    """Per size, task and option: n, agreement with fp32, mean |confidence change|, on by default or not."""
    import torch

    from services.common import openvino_backend

    torch.set_num_threads(threads)
    report: dict[str, Any] = {}
    for size, registry in registries.items():
        for task in tasks:
            version_dir = Path(registry) / MODEL_OF_TASK[task] / "1"
            if not version_dir.exists():
                continue
            answers = {name: _answers(task, version_dir, opts, count, threads) for name, opts in VARIANTS[task].items()
                       if opts.get("backend") != "openvino" or openvino_backend.available()}
            reference = answers["fp32"]
            for name, got in answers.items():
                agree = sum(_agree(task, a, b) for a, b in zip(got, reference, strict=True)) / len(reference)
                conf = (round(sum(abs(a["confidence"] - b["confidence"]) for a, b in zip(got, reference, strict=True))
                              / len(reference), 6) if task != "style" else None)
                report[f"{size}/{task}/{name}"] = {
                    "n": len(reference), "agrees_with_fp32": round(agree, 4), "mean_abs_confidence_change": conf,
                    "passes_1pct_guard": agree >= AGREEMENT_FLOOR}
    return report
