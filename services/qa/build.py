"""Build an extractive-QA model offline: random weights (benchmarks) or trained on the facts world.

``build_qa`` writes a real-architecture model with random weights. ``build_tiny`` trains
a small ``BertForQuestionAnswering`` on :mod:`services.world.facts` with a fixed seed and
returns its held-out scores (SQuAD exact match and F1, as the serving runtime answers).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(arch="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=128),
    "world": dict(arch="bert", hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=128),
    # distilbert-base-cased-distilled-squad
    "base": dict(arch="distilbert", dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512),
}
Progress = Callable[[str, int, int, dict[str, Any]], None]


def _make(size: str, world_vocab: bool) -> tuple[Any, Any]:
    from transformers import BertConfig, BertForQuestionAnswering, DistilBertConfig, DistilBertForQuestionAnswering

    spec = dict(SIZES[size])
    arch = spec.pop("arch")
    if world_vocab:
        from services.world.vocab import build_world_tokenizer as build_tokenizer
    else:
        from services.common.tiny_tokenizer import build_bert_tokenizer as build_tokenizer
    tokenizer = build_tokenizer(model_max_length=spec["max_position_embeddings"])
    if arch == "bert":
        model = BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    else:
        model = DistilBertForQuestionAnswering(DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    return model, tokenizer


def build_qa(out_dir: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write a loadable extractive-QA model + tokenizer directory (random weights)."""
    import torch

    torch.manual_seed(seed)
    model, tokenizer = _make(size, world_vocab=False)
    model.eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def encode(tokenizer: Any, items: list[Any], max_len: int) -> dict[str, Any]:
    """Token ids and the answer's token span (question first, like the runtime)."""
    import torch

    enc = tokenizer([it.question for it in items], [it.context for it in items], truncation="only_second",
                    max_length=max_len, padding="longest", return_offsets_mapping=True, return_tensors="pt")
    starts, ends = [], []
    for b, it in enumerate(items):
        lo, hi = it.answer_start, it.answer_start + len(it.answer)
        seq = enc.sequence_ids(b)
        offsets = enc["offset_mapping"][b].tolist()
        ctx = [i for i, s in enumerate(seq) if s == 1]
        starts.append(next(i for i in ctx if offsets[i][1] > lo))
        ends.append(next(i for i in reversed(ctx) if offsets[i][0] < hi))
    enc["start_positions"], enc["end_positions"] = torch.tensor(starts), torch.tensor(ends)
    return enc


def answer(model: Any, tokenizer: Any, items: list[Any], max_len: int, batch_size: int = 64,
           max_answer_tokens: int = 30) -> list[tuple[str, float]]:
    """Best span and its confidence per item, chosen the way the serving runtime chooses."""
    import numpy as np
    import torch

    from services.qa.runtime import best_span

    out: list[tuple[str, float]] = []
    model.eval()
    for lo in range(0, len(items), batch_size):
        chunk = items[lo:lo + batch_size]
        enc = tokenizer([it.question for it in chunk], [it.context for it in chunk], truncation="only_second",
                        max_length=max_len, padding="longest", return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").numpy()
        with torch.inference_mode():
            logits = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        for b, it in enumerate(chunk):
            mask = np.array([s == 1 for s in enc.sequence_ids(b)])
            span = best_span(logits.start_logits[b].numpy(), logits.end_logits[b].numpy(), mask, max_answer_tokens)
            if span is None:
                out.append(("", 0.0))
                continue
            i, j, _, conf = span
            out.append((it.context[int(offsets[b][i][0]):int(offsets[b][j][1])], conf))
    return out


def build_tiny(out_dir: Path, seed: int = 0, steps: int = 1400, batch_size: int = 32, train_examples: int = 8000,
               heldout_examples: int = 500, progress: Progress | None = None) -> dict[str, Any]:
    """Train the world BERT on the facts world; write it to ``out_dir``; return its scores."""
    import torch

    from services.world import facts

    started = time.monotonic()
    random.seed(seed)
    torch.manual_seed(seed)
    model, tokenizer = _make("world", world_vocab=True)
    max_len = SIZES["world"]["max_position_embeddings"]
    train = facts.qa_items(seed, train_examples)
    held = facts.qa_items(seed + 10_000, heldout_examples)
    if progress:
        progress("data", 0, steps, {"examples": len(train)})
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    rng = random.Random(seed)
    encoded = encode(tokenizer, train, max_len)  # once: tokenizing every step costs as much as the model
    encoded.pop("offset_mapping")
    model.train()
    loss_avg = None
    for step in range(1, steps + 1):
        idx = torch.tensor(rng.sample(range(len(train)), batch_size))
        width = int(encoded["attention_mask"][idx].sum(dim=1).max())
        batch = {k: (v[idx, :width] if v.dim() == 2 else v[idx]) for k, v in encoded.items()}
        loss = model(**batch).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
        if progress and (step % 50 == 0 or step == steps):
            progress("train", step, steps, {"loss": round(loss_avg, 4)})
    got = answer(model, tokenizer, held, max_len)
    metrics = score(got, held)
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    metrics["steps"] = steps
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return metrics


def score(got: list[tuple[str, float]], truth: list[Any]) -> dict[str, Any]:
    from services.finetune.metrics import exact_match, f1_score

    em = [exact_match(g[0], t.answer) for g, t in zip(got, truth, strict=True)]
    f1 = [f1_score(g[0], t.answer) for g, t in zip(got, truth, strict=True)]
    by_kind: dict[str, list[float]] = {}
    for ok, t in zip(em, truth, strict=True):
        by_kind.setdefault(t.kind, []).append(ok)
    confs = sorted(g[1] for g in got)
    return {"heldout": {"exact_match": round(sum(em) / len(em), 4), "f1": round(sum(f1) / len(f1), 4),
                        "count": len(em), "by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
                        "mean_confidence": round(sum(confs) / len(confs), 4),
                        "median_confidence": round(confs[len(confs) // 2], 4)}}
