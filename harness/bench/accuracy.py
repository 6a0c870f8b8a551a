"""What bf16 and int8 cost in answers, on the tiny eval sets shipped in ``data/samples``.

The benchmark models have random weights, so exact-match against the gold answers says
little; the telling figures are agreement with the fp32 answer of the same model and the
confidence drift. Both are measured for the tiny models and for the real-size ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from services.common.tasks import task_settings

from .models import MODEL_OF_TASK

VARIANTS: dict[str, dict[str, Any]] = {"fp32": {}, "bf16": {"bf16": True}, "int8": {"quantize": "int8"}}


def qa_eval_set(samples: Path) -> list[dict[str, str]]:
    data = json.loads((samples / "qa.json").read_text(encoding="utf-8"))
    return [{"question": qa["question"], "context": p["context"], "answer": qa["answers"][0]["text"]}
            for article in data["data"] for p in article["paragraphs"] for qa in p["qas"]]


def vqa_eval_set(samples: Path) -> list[dict[str, str]]:
    with (samples / "vqa.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _answers(task: str, version_dir: Path, data_dir: Path, rows: list[dict[str, str]],
             overrides: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    from services.qa.runtime import QaRuntime
    from services.vqa.runtime import VqaRuntime

    cls = QaRuntime if task == "qa" else VqaRuntime
    runtime = cls(task_settings(task, warmup=False, num_threads=threads, **overrides), data_dir)
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    try:
        out = []
        for row in rows:
            body = ({"question": row["question"], "context": row["context"]} if task == "qa"
                    else {"question": row["question"], "image_path": row["image_path"]})
            out.extend(runtime.predict([runtime.prepare(runtime.request_model(**body))]))
        return out
    finally:
        runtime.unload()


def precision_cost(registries: dict[str, Path], samples: Path, threads: int) -> dict[str, Any]:
    """Per size and task: exact match vs gold, agreement with fp32 and mean |confidence change|."""
    import torch

    torch.set_num_threads(threads)
    data_dir = samples.parent  # image_path values are relative to the data root ("samples/...")
    sets = {"qa": qa_eval_set(samples), "vqa": vqa_eval_set(samples)}
    report: dict[str, Any] = {}
    for size, registry in registries.items():
        for task, rows in sets.items():
            version_dir = Path(registry) / MODEL_OF_TASK[task] / "1"
            if not version_dir.exists():
                continue
            answers = {name: _answers(task, version_dir, data_dir, rows, opts, threads) for name, opts in VARIANTS.items()}
            reference = answers["fp32"]
            for name, got in answers.items():
                report[f"{size}/{task}/{name}"] = {
                    "n": len(rows),
                    "exact_match": round(sum(a["answer"].strip().lower() == r["answer"].strip().lower()
                                             for a, r in zip(got, rows, strict=True)) / len(rows), 3),
                    "agrees_with_fp32": round(sum(a["answer"] == b["answer"]
                                                  for a, b in zip(got, reference, strict=True)) / len(rows), 3),
                    "mean_abs_confidence_change": round(sum(abs(a["confidence"] - b["confidence"])
                                                            for a, b in zip(got, reference, strict=True)) / len(rows), 6),
                }
    return report
