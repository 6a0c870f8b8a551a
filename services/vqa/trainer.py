"""VQA: a LoRA adapter (peft) over the production BLIP, from (image, question, answer) rows.

Over a world model (docs/world.md) the rows are mixed with replayed shapes-world examples and
every scored version also gets a world score (``services/common/world_scoring.py``).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from services.common.images import decode_image, read_image_path
from services.common.scores import vqa_scores
from services.common.torch_training import attach_lora, lora_start, optimise, runtime_predict, seed_everything
from services.common.training import TrainContext, Trained, Trainer
from services.common.world_scoring import EVAL_SEED, MIN_REPLAY, REPLAY_SEED, WorldEval, WorldScorer, world_of

from .schemas import FAMILY_NAME

DEFAULT_LR = 1e-2  # high for LoRA, but the adapter is tiny and gradients are clipped
# Over a world model: its answer head has pushed every word it never answered far down (the
# word of a new colour included), which LoRA on attention cannot lift; the head's output layer
# (the word scores) is trained in full (peft modules_to_save) at a gentler rate, next to replayed
# world examples. Only that layer: training the whole head (its dense + LayerNorm transform too)
# moved every answer's representation and cost the world model 6 points in the drift scenario.
WORLD_HEAD = ["predictions.decoder"]
WORLD_LR = 2e-3
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
WORLD_EVAL_ITEMS = 240


def vqa_replay(count: int, seed: int) -> list[dict[str, Any]]:
    """World examples as training rows with the image in memory (``image``), not on disk."""
    from services.vqa.world import shapes

    return [{"image_key": f"world:{seed}:{i}", "image": shapes.render(ex.scene), "question": ex.question,
             "answer": ex.answer, "source": "world-replay"}
            for i, ex in enumerate(shapes.examples(seed, count))]


def world_requests() -> tuple[list[dict[str, Any]], list[str]]:
    from services.vqa.world import shapes

    requests, truths = [], []
    for ex in shapes.examples(EVAL_SEED, WORLD_EVAL_ITEMS):
        buf = io.BytesIO()
        shapes.render(ex.scene).save(buf, format="PNG")
        requests.append({"image_b64": base64.b64encode(buf.getvalue()).decode(), "question": ex.question})
        truths.append(ex.answer)
    return requests, truths


def world_labels() -> list[list[str]]:
    """Per world eval item, its slices: by expected answer and by question kind."""
    from services.vqa.world import shapes

    return [[f"answer={ex.answer}", f"kind={ex.kind}"] for ex in shapes.examples(EVAL_SEED, WORLD_EVAL_ITEMS)]


WORLD = WorldEval(requests=world_requests, labels=world_labels, scores=vqa_scores, metric="accuracy")


class VqaTrainer(Trainer):
    task = FAMILY_NAME

    def __init__(self) -> None:
        self.world = WorldScorer(WORLD)

    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained:
        import torch
        from transformers import BlipForQuestionAnswering, BlipProcessor

        from .build import _loss, pixel_batch

        seed_everything(ctx.hyper.seed, ctx.settings.num_threads)
        production, base, base_dir, continue_from = lora_start(ctx.registry, ctx.model)
        ctx.reporter.report({"phase": "loading"})
        processor = BlipProcessor.from_pretrained(base_dir)
        world = world_of(ctx.registry, ctx.model, production) is not None
        model = attach_lora(BlipForQuestionAnswering.from_pretrained(base_dir), ctx, ctx.family_settings.lora_targets,
                            continue_from, modules_to_save=WORLD_HEAD if world else None)
        replay = vqa_replay(max(MIN_REPLAY, 4 * len(rows)), REPLAY_SEED + ctx.hyper.seed) if world else []
        pixels = self._pixels(ctx.data_dir, processor, {r["image_path"] for r in rows})
        for r in replay:
            pixels[r["image_key"]] = pixel_batch(processor, [r["image"]])
        own_rows = len(rows)
        rows = [{**r, "image_key": r["image_path"]} for r in rows] + replay
        tokenizer = processor.tokenizer

        def loss_of(batch: list[dict[str, Any]]) -> Any:
            q = tokenizer([r["question"] for r in batch], padding="longest", return_tensors="pt")
            a = tokenizer([r["answer"] for r in batch], padding="longest", return_tensors="pt")
            return _loss(model, torch.cat([pixels[r["image_key"]] for r in batch]), q.input_ids, q.attention_mask,
                         a.input_ids, a.attention_mask)

        losses = optimise(ctx, model, rows, loss_of, WORLD_LR if world else DEFAULT_LR,
                          steps_rows=own_rows if world else None)
        return Trained(write=lambda out: model.save_pretrained(str(out)), kind="lora-adapter", framework="torch",
                       base=base, parent_version=production,
                       train_scores={"final_loss": losses[-1], "first_loss": losses[0], "steps": len(losses),
                                     "world_replay_rows": len(replay)},
                       extra={"lora": {"targets": ctx.family_settings.lora_targets,
                                       "modules_to_save": WORLD_HEAD if world else None,
                                       "continued_from": production if continue_from else None}})

    @staticmethod
    def _pixels(data_dir: Path, processor: Any, paths: set[str]) -> dict[str, Any]:
        side = int(processor.image_processor.size["height"])
        out = {}
        for path in sorted(paths):
            image = decode_image(read_image_path(data_dir, path, MAX_IMAGE_BYTES), MAX_IMAGE_PIXELS, MAX_IMAGE_BYTES,
                                 draft_side=side)
            out[path] = processor.image_processor(image, return_tensors="pt")["pixel_values"]
        return out

    def evaluate(self, ctx: TrainContext, version: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        answers = runtime_predict(self.task, ctx.registry, ctx.data_dir, ctx.model, version,
                                  [{"image_path": r["image_path"], "question": r["question"]} for r in rows])
        scores = vqa_scores([a["answer"] for a in answers], [r["answer"] for r in rows])
        world = self.world.score(self.task, ctx.registry, ctx.data_dir, ctx.model, version)
        return {**scores, "world": world} if world is not None else scores
