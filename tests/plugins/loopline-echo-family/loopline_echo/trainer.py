"""Echo training: remember every row's answer on top of production's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.scores import vqa_scores
from services.common.torch_training import runtime_predict
from services.common.training import TrainContext, Trained, Trainer

from .runtime import TABLE, write_table
from .schemas import NAME


class EchoTrainer(Trainer):
    task = NAME

    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained:
        import json

        production = ctx.registry.resolve(ctx.model, "production")
        answers = {} if production is None else json.loads(
            (ctx.registry.version_dir(ctx.model, production) / TABLE).read_text(encoding="utf-8"))
        answers.update({r["text"]: r["answer"] for r in rows})
        return Trained(write=lambda out: write_table(Path(out), answers), kind="full", framework="python",
                       base=None, parent_version=production, train_scores={"rows": len(rows)})

    def evaluate(self, ctx: TrainContext, version: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        answers = runtime_predict(self.task, ctx.registry, ctx.data_dir, ctx.model, version,
                                  [{"text": r["text"]} for r in rows])
        return vqa_scores([a["answer"] for a in answers], [r["answer"] for r in rows])
