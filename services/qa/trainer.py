"""Extractive QA: LoRA (peft, with the span head trained in full) or a full fine-tune, a setting.

Rows become token windows the way the runtime reads contexts (question first, context
windows with a stride); a window that holds the answer is labelled with its token span,
the others point at [CLS].
"""

from __future__ import annotations

from typing import Any

from services.common.scores import qa_scores
from services.common.torch_training import attach_lora, lora_start, optimise, runtime_predict, seed_everything
from services.common.training import TrainContext, Trained, Trainer
from services.common.world_scoring import EVAL_SEED, MIN_REPLAY, REPLAY_SEED, WorldEval, WorldScorer, world_of

from .schemas import FAMILY_NAME

DEFAULT_LR = {"lora": 1e-2, "full": 5e-4}
WORLD_LR = {"lora": 1e-3, "full": 1e-4}  # over a world model: gentler, next to 4x replayed world rows
SPAN_HEAD = ["qa_outputs"]  # random on a fresh model, so always trained in full
WORLD_EVAL_ITEMS = 200


def qa_replay(count: int, seed: int) -> list[dict[str, Any]]:
    from services.qa.world import facts

    return [{"id": f"world-{seed}-{i}", "question": it.question, "context": it.context, "answer": it.answer,
             "answer_start": it.answer_start, "source": "world-replay"}
            for i, it in enumerate(facts.qa_items(seed, count))]


def world_requests() -> tuple[list[dict[str, Any]], list[str]]:
    from services.qa.world import facts

    items = facts.qa_items(EVAL_SEED, WORLD_EVAL_ITEMS)
    return [{"question": it.question, "context": it.context} for it in items], [it.answer for it in items]


def world_labels() -> list[list[str]]:
    """Per world eval item, its slice: the fact kind."""
    from services.qa.world import facts

    return [[f"kind={it.kind}"] for it in facts.qa_items(EVAL_SEED, WORLD_EVAL_ITEMS)]


WORLD = WorldEval(requests=world_requests, labels=world_labels, scores=qa_scores, metric="f1")


def encode_windows(tokenizer: Any, rows: list[dict[str, Any]], max_len: int, stride: int) -> list[dict[str, Any]]:
    enc = tokenizer([r["question"] for r in rows], [r["context"] for r in rows], truncation="only_second",
                    max_length=max_len, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length")
    windows = []
    for w, sample in enumerate(enc["overflow_to_sample_mapping"]):
        row = rows[sample]
        char_start = row["answer_start"]
        char_end = char_start + len(row["answer"])
        seq_ids = enc.sequence_ids(w)
        offsets = enc["offset_mapping"][w]
        start = end = 0
        ctx_tokens = [i for i, s in enumerate(seq_ids) if s == 1]
        if ctx_tokens and offsets[ctx_tokens[0]][0] <= char_start and offsets[ctx_tokens[-1]][1] >= char_end:
            start = next(i for i in ctx_tokens if offsets[i][1] > char_start)
            end = next(i for i in reversed(ctx_tokens) if offsets[i][0] < char_end)
        item = {k: enc[k][w] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        windows.append({**item, "start_positions": start, "end_positions": end})
    return windows


class QaTrainer(Trainer):
    task = FAMILY_NAME

    def __init__(self) -> None:
        self.world = WorldScorer(WORLD)

    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        seed_everything(ctx.hyper.seed, ctx.settings.num_threads)
        mode = ctx.family_settings.mode
        production, base, base_dir, continue_from = lora_start(ctx.registry, ctx.model)
        ctx.reporter.report({"phase": "loading"})
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForQuestionAnswering.from_pretrained(base_dir)
        world = world_of(ctx.registry, ctx.model, production) is not None
        # a world model's span head is trained already: retraining it in full forgets the world
        head = None if world else SPAN_HEAD
        if mode == "lora":
            model = attach_lora(model, ctx, ctx.family_settings.lora_targets, continue_from, modules_to_save=head)
        elif continue_from is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(continue_from)).merge_and_unload()
        max_len = min(ctx.settings.max_seq_len, int(getattr(model.config, "max_position_embeddings", 512)),
                      int(tokenizer.model_max_length))
        replay = qa_replay(max(MIN_REPLAY, 4 * len(rows)), REPLAY_SEED + ctx.hyper.seed) if world else []
        # a handful of rows next to many replayed ones: repeat them to half of the mix, so the
        # gentle world learning rate still fits them
        own = rows * max(1, -(-len(replay) // len(rows)))
        windows = encode_windows(tokenizer, own + replay, max_len, min(128, max_len // 4))
        input_names = [k for k in ("input_ids", "attention_mask", "token_type_ids")
                       if k in windows[0] and k in tokenizer.model_input_names]

        def loss_of(batch: list[dict[str, Any]]) -> Any:
            inputs = {k: torch.tensor([w[k] for w in batch]) for k in input_names}
            # trim padding shared by the whole batch: same result, less compute
            width = int(inputs["attention_mask"].sum(dim=1).max())
            inputs = {k: v[:, :width] for k, v in inputs.items()}
            out = model(**inputs, start_positions=torch.tensor([w["start_positions"] for w in batch]),
                        end_positions=torch.tensor([w["end_positions"] for w in batch]))
            return out.loss

        losses = optimise(ctx, model, windows, loss_of, (WORLD_LR if world else DEFAULT_LR)[mode],
                          steps_rows=len(rows) if world else None)
        scores = {"final_loss": losses[-1], "first_loss": losses[0], "steps": len(losses),
                  "world_replay_rows": len(replay)}
        if mode == "lora":
            return Trained(write=lambda out: model.save_pretrained(str(out)), kind="lora-adapter", framework="torch",
                           base=base, parent_version=production, train_scores=scores,
                           extra={"lora": {"targets": ctx.family_settings.lora_targets, "modules_to_save": head,
                                           "continued_from": production if continue_from else None}})

        def write_full(out: Any) -> None:
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))

        return Trained(write=write_full, kind="full", framework="torch", base=None, parent_version=production,
                       train_scores=scores)

    def evaluate(self, ctx: TrainContext, version: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        answers = runtime_predict(self.task, ctx.registry, ctx.data_dir, ctx.model, version,
                                  [{"question": r["question"], "context": r["context"]} for r in rows])
        scores = qa_scores([a["answer"] for a in answers], [r["answer"] for r in rows])
        world = self.world.score(self.task, ctx.registry, ctx.data_dir, ctx.model, version)
        return {**scores, "world": world} if world is not None else scores
