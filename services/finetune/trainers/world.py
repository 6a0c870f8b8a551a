"""Fine-tuning a model trained on a synthetic world (``manifest["world"]``, docs/world.md).

Two things keep such a fine-tune from forgetting its world:

* **replay**: the training rows are mixed with as many freshly generated world examples
  (at least ``MIN_REPLAY``), so the adapter learns the new answers next to the old ones;
* **world score**: every evaluated version is also scored on a fixed held-out world set;
  the gate compares it with production's (``gate.WORLD_TOLERANCE``), so a job that learns
  the new traffic by breaking the world is refused.

Models without a world (pulled checkpoints) are fine-tuned and scored as before.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from services.common.registry import Registry

MIN_REPLAY = 64
WORLD_EVAL_ITEMS = {"vqa": 240, "qa": 200}
REPLAY_SEED, EVAL_SEED = 20_000, 30_000


def world_of(registry: Registry, model: str, version: int) -> dict[str, Any] | None:
    """The world a version (or the base of an adapter) was trained on, if any."""
    manifest = registry.manifest(model, version)
    if manifest.get("kind") == "lora-adapter" and manifest.get("base"):
        manifest = registry.manifest(manifest["base"]["model"], int(manifest["base"]["version"]))
    world = manifest.get("world")
    return world if isinstance(world, dict) else None


def vqa_replay(count: int, seed: int) -> list[dict[str, Any]]:
    """World examples as training rows with the image in memory (``image``), not on disk."""
    from services.world import shapes

    return [{"image_key": f"world:{seed}:{i}", "image": shapes.render(ex.scene), "question": ex.question,
             "answer": ex.answer, "source": "world-replay"}
            for i, ex in enumerate(shapes.examples(seed, count))]


def qa_replay(count: int, seed: int) -> list[dict[str, Any]]:
    from services.world import facts

    return [{"id": f"world-{seed}-{i}", "question": it.question, "context": it.context, "answer": it.answer,
             "answer_start": it.answer_start, "source": "world-replay"}
            for i, it in enumerate(facts.qa_items(seed, count))]


def vqa_eval_requests() -> tuple[list[dict[str, Any]], list[str]]:
    from services.world import shapes

    requests, truths = [], []
    for ex in shapes.examples(EVAL_SEED, WORLD_EVAL_ITEMS["vqa"]):
        buf = io.BytesIO()
        shapes.render(ex.scene).save(buf, format="PNG")
        requests.append({"image_b64": base64.b64encode(buf.getvalue()).decode(), "question": ex.question})
        truths.append(ex.answer)
    return requests, truths


def qa_eval_requests() -> tuple[list[dict[str, Any]], list[str]]:
    from services.world import facts

    items = facts.qa_items(EVAL_SEED, WORLD_EVAL_ITEMS["qa"])
    return [{"question": it.question, "context": it.context} for it in items], [it.answer for it in items]


def world_labels(task: str) -> list[list[str]]:
    """Per world eval item, the slices it belongs to: VQA by expected answer and by question kind,
    QA by fact kind (the gate compares versions slice by slice)."""
    if task == "vqa":
        from services.world import shapes

        return [[f"answer={ex.answer}", f"kind={ex.kind}"] for ex in shapes.examples(EVAL_SEED, WORLD_EVAL_ITEMS["vqa"])]
    from services.world import facts

    return [[f"kind={it.kind}"] for it in facts.qa_items(EVAL_SEED, WORLD_EVAL_ITEMS["qa"])]


def slice_scores(values: list[float], labels: list[list[str]]) -> dict[str, dict[str, Any]]:
    """{slice: {"score", "count"}} from per-item scores and each item's slice names."""
    sums: dict[str, list[float]] = {}
    for value, names in zip(values, labels, strict=True):
        for name in names:
            sums.setdefault(name, []).append(float(value))
    return {name: {"score": round(sum(v) / len(v), 4), "count": len(v)} for name, v in sorted(sums.items())}


class WorldScorer:
    """Scores versions on the fixed world set once each (the gate asks several times)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, int], dict[str, Any]] = {}

    def score(self, task: str, registry: Registry, data_dir: Any, model: str, version: int) -> dict[str, Any] | None:
        if world_of(registry, model, version) is None:
            return None
        key = (model, version)
        if key not in self.cache:
            from ..metrics import qa_scores, vqa_scores
            from .torch_common import runtime_predict

            requests, truths = vqa_eval_requests() if task == "vqa" else qa_eval_requests()
            answers = runtime_predict(task, registry, data_dir, model, version, requests, batch_size=32)
            scores = (vqa_scores if task == "vqa" else qa_scores)([a["answer"] for a in answers], truths)
            metric = "accuracy" if task == "vqa" else "f1"
            scores["slices"] = slice_scores(scores["rows"][metric], world_labels(task))
            self.cache[key] = scores
        return self.cache[key]
