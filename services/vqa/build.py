"""Build a BLIP VQA model offline: random weights (benchmarks) or trained on the shapes world.

``build_blip`` writes a real-architecture model with random weights (the performance
harness uses the real sizes). ``build_tiny`` trains a small ``BlipForQuestionAnswering``
on :mod:`services.world.shapes` with a fixed seed and returns its held-out scores.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY = {
    "text": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64),
    # BlipVisionConfig's default initializer_range (1e-10) would make random image features
    # vanish, so a tiny model would ignore its image and could not be fine-tuned on it
    "vision": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   image_size=64, patch_size=16, initializer_range=0.02),
}
# the world model: 64 px, 8 px patches (a shape is a few patches wide)
WORLD = {
    "text": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 max_position_embeddings=64),
    "vision": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                   image_size=64, patch_size=8, initializer_range=0.02),
}
# Salesforce/blip-vqa-base: ViT-B/16 at 384 px, BERT-base text encoder/decoder
BASE = {
    "text": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512),
    "vision": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   image_size=384, patch_size=16, initializer_range=0.02),
}
SIZES: dict[str, dict[str, Any]] = {"tiny": TINY, "world": WORLD, "base": BASE}
Progress = Callable[[str, int, int, dict[str, Any]], None]


def _make(size: str, world_vocab: bool) -> tuple[Any, Any]:
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    spec = SIZES[size]
    if world_vocab:
        from services.world.vocab import build_world_tokenizer as build_tokenizer
    else:
        from services.common.tiny_tokenizer import build_bert_tokenizer as build_tokenizer
    tokenizer = build_tokenizer(model_max_length=spec["text"]["max_position_embeddings"])
    ids = tokenizer.convert_tokens_to_ids
    config = BlipConfig(
        text_config={**spec["text"], "vocab_size": len(tokenizer), "pad_token_id": ids("[PAD]"),
                     "bos_token_id": ids("[CLS]"), "sep_token_id": ids("[SEP]"), "eos_token_id": ids("[SEP]")},
        vision_config=spec["vision"],
    )
    model = BlipForQuestionAnswering(config)
    side = spec["vision"]["image_size"]
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}),
                              tokenizer=tokenizer)
    return model, processor


def build_blip(out_dir: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write a loadable ``BlipForQuestionAnswering`` + ``BlipProcessor`` directory (random weights)."""
    import torch

    torch.manual_seed(seed)
    model, processor = _make(size, world_vocab=False)
    model.eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def edge_colour_bank(patch: int, channels: int) -> Any:
    """Starting filters for the patch embedding: oriented step edges (16 directions, on
    luminance) and colour opponents. Trained end to end like the rest; they only spare a
    ViT trained from scratch on a few thousand scenes the slow discovery of edges, which
    tell a triangle from a square from a circle."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(patch) - (patch - 1) / 2, torch.arange(patch) - (patch - 1) / 2,
                            indexing="ij")
    filters = []
    for k in range(16):
        angle = math.pi * 2 * k / 16
        edge = torch.tanh((xs * math.cos(angle) + ys * math.sin(angle)) / 1.0)
        filters.append(edge.expand(3, patch, patch) / math.sqrt(3 * patch * patch))
    for r, g, b in ((1, -1, 0), (0, 1, -1), (-1, 0, 1), (1, 1, -2), (1, -2, 1), (-2, 1, 1), (1, 1, 1), (-1, -1, -1)):
        filters.append(torch.tensor([r, g, b], dtype=torch.float32)[:, None, None].expand(3, patch, patch)
                       / math.sqrt(6 * patch * patch))
    bank = torch.stack(filters)[:channels]
    return bank * 2.0


def pixel_batch(processor: Any, images: list[Any]) -> Any:
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def _loss(model: Any, pixels: Any, q_ids: Any, q_mask: Any, a_ids: Any, a_mask: Any,
          image_embeds: Any = None) -> Any:
    """The answer loss as ``generate`` decodes: the decoder sees every question position (pads too)."""
    import torch

    if image_embeds is None:
        image_embeds = model.vision_model(pixel_values=pixels)[0]
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
    question = model.text_encoder(input_ids=q_ids, attention_mask=q_mask, encoder_hidden_states=image_embeds,
                                  encoder_attention_mask=image_mask)[0]
    labels = a_ids.masked_fill(a_mask == 0, -100)
    out = model.text_decoder(input_ids=a_ids, attention_mask=a_mask, encoder_hidden_states=question,
                             encoder_attention_mask=torch.ones(question.shape[:-1], dtype=torch.long),
                             labels=labels, reduction="mean")
    return out.loss


def scene_targets(scene: Any) -> tuple[int, int, list[float]]:
    """Auxiliary targets of a scene for the vision encoder: count class, the shape of a
    one-shape scene (-100 otherwise), colour x shape presence."""
    from services.world import shapes

    single = shapes.SHAPES.index(scene.items[0].shape) if len(scene.items) == 1 else -100
    present = [0.0] * (len(shapes.COLORS) * len(shapes.SHAPES))
    for it in scene.items:
        if it.color in shapes.COLORS:
            present[list(shapes.COLORS).index(it.color) * len(shapes.SHAPES) + shapes.SHAPES.index(it.shape)] = 1.0
    return len(scene.items) - 1, single, present


def answer(model: Any, processor: Any, pixels: Any, questions: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
    """Greedy answers and their confidence, decoded the way the serving runtime does."""
    import torch

    from services.vqa.runtime import answer_confidence

    tok = processor.tokenizer
    out: list[tuple[str, float]] = []
    model.eval()
    for lo in range(0, len(questions), batch_size):
        q = tok(questions[lo:lo + batch_size], padding="longest", return_tensors="pt")
        with torch.inference_mode():
            gen = model.generate(pixel_values=pixels[lo:lo + batch_size], input_ids=q["input_ids"],
                                 attention_mask=q["attention_mask"], max_new_tokens=5, do_sample=False, num_beams=1,
                                 output_scores=True, return_dict_in_generate=True)
        generated = gen.sequences[:, -len(gen.scores):]
        lps: list[list[float]] = [[] for _ in range(generated.shape[0])]
        done = [False] * generated.shape[0]
        for t, scores in enumerate(gen.scores):
            logp = torch.log_softmax(scores.float(), dim=-1)
            for b in range(generated.shape[0]):
                if not done[b]:
                    token = int(generated[b, t])
                    lps[b].append(float(logp[b, token]))
                    done[b] = token in (tok.sep_token_id, tok.pad_token_id)
        texts = tok.batch_decode(generated, skip_special_tokens=True)
        out.extend((t.strip(), c) for t, c in zip(texts, answer_confidence(lps), strict=True))
    return out


def build_tiny(out_dir: Path, seed: int = 0, steps: int = 900, warm_steps: int = 300, scenes_per_batch: int = 32,
               train_scenes: int = 4000, heldout_examples: int = 600, lr: float = 3e-3,
               progress: Progress | None = None) -> dict[str, Any]:
    """Train the world BLIP on the shapes world; write it to ``out_dir``; return its scores.

    Two phases: ``warm_steps`` train the vision encoder alone on what each scene holds
    (how many shapes, which colour-shape pairs) through a linear head that is thrown away;
    then the whole model learns to answer, with that head's loss kept as an auxiliary term.
    A ViT trained from scratch with only the answer loss takes far longer to see shapes.
    """
    import torch

    from services.world import shapes

    started = time.monotonic()
    random.seed(seed)
    torch.manual_seed(seed)
    model, processor = _make("world", world_vocab=True)
    side = SIZES["world"]["vision"]["image_size"]
    conv = model.vision_model.embeddings.patch_embedding
    with torch.no_grad():
        bank = edge_colour_bank(conv.kernel_size[0], conv.out_channels)
        conv.weight[: len(bank)] = bank
    rng = random.Random(seed)
    scenes = [shapes.sample_scene(rng, 1 if rng.random() < 0.4 else rng.randint(2, shapes.MAX_SHAPES))
              for _ in range(train_scenes)]
    questions = [shapes.questions_for(sc, rng, both_exists=True) for sc in scenes]
    pixels = pixel_batch(processor, [shapes.render(sc, side) for sc in scenes])
    targets = [scene_targets(sc) for sc in scenes]
    counts = torch.tensor([t[0] for t in targets])
    single = torch.tensor([t[1] for t in targets])
    present = torch.tensor([t[2] for t in targets])
    if progress:
        progress("data", 0, steps, {"scenes": len(scenes), "questions": sum(map(len, questions))})
    hidden = SIZES["world"]["vision"]["hidden_size"]
    n_count, n_shape = shapes.MAX_SHAPES, len(shapes.SHAPES)
    head = torch.nn.Linear(hidden, n_count + n_shape + present.shape[1])

    def aux_loss(embeds: Any, idx: Any) -> Any:
        import torch.nn.functional as F

        logits = head(embeds[:, 1:].mean(1))
        loss = F.cross_entropy(logits[:, :n_count], counts[idx])
        if bool((single[idx] >= 0).any()):
            loss = loss + F.cross_entropy(logits[:, n_count:n_count + n_shape], single[idx], ignore_index=-100)
        return loss + 4 * F.binary_cross_entropy_with_logits(logits[:, n_count + n_shape:], present[idx])

    tok = processor.tokenizer
    # tokenized once: tokenizing every step costs as much as the text side of the model
    flat = [ex for qs in questions for ex in qs]
    q_all = tok([ex.question for ex in flat], padding="longest", return_tensors="pt")
    a_all = tok([ex.answer for ex in flat], padding="longest", return_tensors="pt")
    first = [0]
    for qs in questions:
        first.append(first[-1] + len(qs))
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    total = warm_steps + steps
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    model.train()
    loss_avg = None
    for step in range(1, total + 1):
        idx = torch.tensor(rng.sample(range(len(scenes)), min(len(scenes), scenes_per_batch if step > warm_steps else 64)))
        embeds = model.vision_model(pixel_values=pixels[idx])[0]
        loss = aux_loss(embeds, idx)
        if step > warm_steps:
            rows = [(j, k) for j, i in enumerate(idx.tolist()) for k in range(first[i], first[i + 1])]
            pick = torch.tensor([k for _, k in rows])
            qw = int(q_all["attention_mask"][pick].sum(dim=1).max())
            aw = int(a_all["attention_mask"][pick].sum(dim=1).max())
            answer_loss = _loss(model, None, q_all["input_ids"][pick, :qw], q_all["attention_mask"][pick, :qw],
                                a_all["input_ids"][pick, :aw], a_all["attention_mask"][pick, :aw],
                                image_embeds=embeds[torch.tensor([j for j, _ in rows])])
            loss = answer_loss + 0.5 * loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        loss_avg = value if loss_avg is None or step == warm_steps + 1 else 0.95 * loss_avg + 0.05 * value
        if progress and (step % 50 == 0 or step == total):
            progress("vision" if step <= warm_steps else "answer", step, total, {"loss": round(loss_avg, 4)})
    model.eval()
    held = shapes.examples(seed + 10_000, heldout_examples)
    held_pixels = pixel_batch(processor, [shapes.render(ex.scene, side) for ex in held])
    got = answer(model, processor, held_pixels, [ex.question for ex in held])
    metrics = score(got, held)
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    metrics["steps"] = {"vision": warm_steps, "answer": steps}
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return metrics


def score(got: list[tuple[str, float]], truth: list[Any]) -> dict[str, Any]:
    right = [g[0] == t.answer for g, t in zip(got, truth, strict=True)]
    by_kind: dict[str, list[bool]] = {}
    for ok, t in zip(right, truth, strict=True):
        by_kind.setdefault(t.kind, []).append(ok)
    confs = sorted(g[1] for g in got)
    return {"heldout": {"accuracy": round(sum(right) / len(right), 4), "count": len(right),
                        "by_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
                        "mean_confidence": round(sum(confs) / len(confs), 4),
                        "median_confidence": round(confs[len(confs) // 2], 4)}}
