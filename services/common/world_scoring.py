"""Fine-tuning a model trained on a synthetic world (``manifest["world"]``, docs/world.md).

Two things keep such a fine-tune from forgetting its world:

* **replay**: the training rows are mixed with as many freshly generated world examples
  (at least ``MIN_REPLAY``), so the adapter learns the new answers next to the old ones;
* **world score**: every evaluated version is also scored on a fixed held-out world set;
  the gate compares it with production's (``GatePolicy.world_tolerance``), so a job that
  learns the new traffic by breaking the world is refused.

Each family's trainer supplies its own world (replay rows, the eval set and its slices); this
module holds what they share. Models without a world (pulled checkpoints) are fine-tuned and
scored as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .registry import Registry

MIN_REPLAY = 64
REPLAY_SEED, EVAL_SEED = 20_000, 30_000


def world_of(registry: Registry, model: str, version: int) -> dict[str, Any] | None:
    """The world a version (or the base of an adapter) was trained on, if any."""
    manifest = registry.manifest(model, version)
    if manifest.get("kind") == "lora-adapter" and manifest.get("base"):
        manifest = registry.manifest(manifest["base"]["model"], int(manifest["base"]["version"]))
    world = manifest.get("world")
    return world if isinstance(world, dict) else None


def slice_scores(values: list[float], labels: list[list[str]]) -> dict[str, dict[str, Any]]:
    """{slice: {"score", "count"}} from per-item scores and each item's slice names."""
    sums: dict[str, list[float]] = {}
    for value, names in zip(values, labels, strict=True):
        for name in names:
            sums.setdefault(name, []).append(float(value))
    return {name: {"score": round(sum(v) / len(v), 4), "count": len(v)} for name, v in sorted(sums.items())}


@dataclass(frozen=True)
class WorldEval:
    """A family's fixed held-out world set: requests, true answers and each item's slices, how
    answers are scored and which score the slices compare."""

    requests: Callable[[], tuple[list[dict[str, Any]], list[str]]]
    labels: Callable[[], list[list[str]]]
    scores: Callable[[list[str], list[str]], dict[str, Any]]
    metric: str


class WorldScorer:
    """Scores versions on the fixed world set once each (the gate asks several times)."""

    def __init__(self, world: WorldEval) -> None:
        self.world = world
        self.cache: dict[tuple[str, int], dict[str, Any]] = {}

    def score(self, task: str, registry: Registry, data_dir: Any, model: str, version: int) -> dict[str, Any] | None:
        if world_of(registry, model, version) is None:
            return None
        key = (model, version)
        if key not in self.cache:
            from .torch_training import runtime_predict

            requests, truths = self.world.requests()
            answers = runtime_predict(task, registry, data_dir, model, version, requests, batch_size=32)
            scores = self.world.scores([a["answer"] for a in answers], truths)
            scores["slices"] = slice_scores(scores["rows"][self.world.metric], self.world.labels())
            self.cache[key] = scores
        return self.cache[key]
