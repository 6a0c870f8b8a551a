"""VQA: a LoRA adapter (peft) over the production BLIP, from (image, question, answer) rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.images import decode_image, read_image_path

from ..metrics import vqa_scores
from .base import TrainContext, Trained, Trainer
from .torch_common import attach_lora, lora_start, optimise, runtime_predict, seed_everything

DEFAULT_LR = 1e-2  # high for LoRA, but the adapter is tiny and gradients are clipped
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


class VqaTrainer(Trainer):
    task = "vqa"

    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained:
        import torch
        from transformers import BlipForQuestionAnswering, BlipProcessor

        seed_everything(ctx.hyper.seed, ctx.settings.num_threads)
        production, base, base_dir, continue_from = lora_start(ctx.registry, ctx.model)
        ctx.reporter.report({"phase": "loading"})
        processor = BlipProcessor.from_pretrained(base_dir)
        model = attach_lora(BlipForQuestionAnswering.from_pretrained(base_dir), ctx, ctx.settings.vqa_lora_targets,
                            continue_from)
        pixels = self._pixels(ctx.data_dir, processor, {r["image_path"] for r in rows})
        tokenizer = processor.tokenizer

        def loss_of(batch: list[dict[str, Any]]) -> Any:
            q = tokenizer([r["question"] for r in batch], padding="longest", return_tensors="pt")
            a = tokenizer([r["answer"] for r in batch], padding="longest", return_tensors="pt")
            labels = a.input_ids.masked_fill(a.attention_mask == 0, -100)
            out = model(input_ids=q.input_ids, attention_mask=q.attention_mask,
                        pixel_values=torch.cat([pixels[r["image_path"]] for r in batch]),
                        decoder_input_ids=a.input_ids, decoder_attention_mask=a.attention_mask, labels=labels)
            return out.loss

        losses = optimise(ctx, model, rows, loss_of, DEFAULT_LR)
        return Trained(write=lambda out: model.save_pretrained(str(out)), kind="lora-adapter", framework="torch",
                       base=base, parent_version=production,
                       train_scores={"final_loss": losses[-1], "first_loss": losses[0], "steps": len(losses)},
                       extra={"lora": {"targets": ctx.settings.vqa_lora_targets, "continued_from": production
                                       if continue_from else None}})

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
        answers = runtime_predict("vqa", ctx.registry, ctx.data_dir, ctx.model, version,
                                  [{"image_path": r["image_path"], "question": r["question"]} for r in rows])
        return vqa_scores([a["answer"] for a in answers], [r["answer"] for r in rows])
