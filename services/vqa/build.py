"""Build a BLIP VQA model offline: random weights (benchmarks) or trained on the shapes world.

``build_blip`` writes a real-architecture model with random weights (the performance
harness uses the real sizes). ``build_tiny`` trains a small ``BlipForQuestionAnswering``
on :mod:`services.vqa.world.shapes` with a fixed seed and returns its held-out scores.
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
# the world model: 48 px, 8 px patches (6 x 6; a shape is one to five patches wide), a wide
# two-layer ViT and a one-layer text encoder / decoder (BLIP shares one text config between them,
# and their cross-attention reads vectors of the vision width, so both are 128 wide)
WORLD = {
    "text": dict(hidden_size=128, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                 max_position_embeddings=64),
    "vision": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=8, intermediate_size=256,
                   image_size=48, patch_size=8, initializer_range=0.02),
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
        from services.qa.world.vocab import build_world_tokenizer as build_tokenizer
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
    from services.common.torch_training import save_untrained

    save_untrained(out_dir, seed, lambda: _make(size, world_vocab=False))


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
    return _answer_output(model, pixels, q_ids, q_mask, a_ids, a_mask, a_ids.masked_fill(a_mask == 0, -100),
                          image_embeds).loss


def _answer_output(model: Any, pixels: Any, q_ids: Any, q_mask: Any, a_ids: Any, a_mask: Any, labels: Any,
                   image_embeds: Any = None) -> Any:
    """The answer decoder's output (``loss`` over ``labels``, -100 where none; ``logits``)."""
    import torch

    if image_embeds is None:
        image_embeds = model.vision_model(pixel_values=pixels)[0]
    image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
    question = model.text_encoder(input_ids=q_ids, attention_mask=q_mask, encoder_hidden_states=image_embeds,
                                  encoder_attention_mask=image_mask)[0]
    return model.text_decoder(input_ids=a_ids, attention_mask=a_mask, encoder_hidden_states=question,
                              encoder_attention_mask=torch.ones(question.shape[:-1], dtype=torch.long),
                              labels=labels, reduction="mean")


def scene_targets(scene: Any) -> tuple[int, int, list[float]]:
    """Auxiliary targets of a scene for the vision encoder: count class (-100 for a blank scene:
    the count head has one class per count from one), the shape of a one-shape scene (-100
    otherwise), colour x shape presence."""
    from services.vqa.world import shapes

    single = shapes.SHAPES.index(scene.items[0].shape) if len(scene.items) == 1 else -100
    present = [0.0] * (len(shapes.COLORS) * len(shapes.SHAPES))
    for it in scene.items:
        if it.color in shapes.COLORS:
            present[list(shapes.COLORS).index(it.color) * len(shapes.SHAPES) + shapes.SHAPES.index(it.shape)] = 1.0
    return len(scene.items) - 1 if scene.items else -100, single, present


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


def position_init(grid: int, width: int, dims: int = 40, amplitude: float = 2.0) -> Any:
    """Starting position embeddings (CLS first): 2-D sines and cosines of the patch column and
    row in the last ``dims`` channels. BLIP starts them at std 0.02, which the patch features
    (edge and colour responses, norm ~40) drown; a ViT then learns *where* things are - what
    tells two shapes of one colour apart - only slowly."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                            indexing="ij")
    freqs = torch.exp(torch.linspace(math.log(0.25), math.log(3.0), dims // 4))
    feats = []
    for coord in (xs.reshape(-1), ys.reshape(-1)):
        angle = coord[:, None] * freqs[None]
        feats += [torch.sin(angle), torch.cos(angle)]
    out = torch.zeros(1, grid * grid + 1, width)
    out[0, 1:, width - 4 * (dims // 4):] = torch.cat(feats, 1) * amplitude
    return out


def patch_targets(scene: Any, side: int, grid: int) -> tuple[Any, Any]:
    """Per-patch auxiliary targets of a scene: the share of each patch covered by each
    colour x shape (column 0: background); a density whose sum over the patches is the
    number of shapes (each shape spreads 1 over the patches it covers), stacked with a 0/1
    map of the patch holding each shape's centre."""
    import numpy as np
    from PIL import Image, ImageDraw

    from services.vqa.world import shapes

    n_classes = len(shapes.COLORS) * len(shapes.SHAPES)
    cover = np.zeros((n_classes + 1, grid, grid), np.float32)
    density = np.zeros((grid, grid), np.float32)
    centre = np.zeros((grid, grid), np.float32)
    cell = side // grid
    for it in scene.items:
        mask = Image.new("L", (side, side), 0)
        draw = ImageDraw.Draw(mask)
        x0, y0, x1, y1 = (v * side for v in it.box)
        if it.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=255)
        elif it.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=255)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=255)
        share = np.asarray(mask, np.float32).reshape(grid, cell, grid, cell).mean((1, 3)) / 255
        if it.color in shapes.COLORS:
            k = list(shapes.COLORS).index(it.color) * len(shapes.SHAPES) + shapes.SHAPES.index(it.shape)
            cover[k + 1] += share
        density += share / max(float(share.sum()), 1e-6)
        centre[min(grid - 1, int((it.box[1] + it.box[3]) / 2 * grid)), min(grid - 1, int((it.box[0] + it.box[2]) / 2 * grid))] = 1
    cover[0] = np.clip(1 - cover[1:].sum(0), 0, 1)
    cover /= cover.sum(0, keepdims=True)
    return cover.reshape(n_classes + 1, -1).T, np.stack([density.reshape(-1), centre.reshape(-1)])


def build_tiny(out_dir: Path, seed: int = 0, steps: int = 720, warm_steps: int = 540, scenes_per_batch: int = 32,
               train_scenes: int = 8000, heldout_examples: int = 600, lr: float = 3e-3, threads: int | None = 1,
               progress: Progress | None = None, blank_steps: int = 80, blank_batch: int = 8, blank_lr: float = 0.1,
               blank_weight: float = 1.0, blank_scenes: int = 400) -> dict[str, Any]:
    """Train the world BLIP on the shapes world on ``threads`` torch threads (restored afterwards;
    None keeps the caller's); see :func:`_build_tiny`. One thread, as the QA build: the ops of a
    width-128 model gain little from a second thread, the result is the same on every machine
    with the same thread count (float sums depend on how work is split), and the figures in
    docs/world.md were measured that way."""
    from services.common.torch_shared import torch_threads

    with torch_threads(threads):
        return _build_tiny(out_dir, seed, steps, warm_steps, scenes_per_batch, train_scenes, heldout_examples, lr,
                           progress, blank_steps, blank_batch, blank_lr, blank_weight, blank_scenes)


def _build_tiny(out_dir: Path, seed: int, steps: int, warm_steps: int, scenes_per_batch: int,
                train_scenes: int, heldout_examples: int, lr: float,
                progress: Progress | None, blank_steps: int, blank_batch: int, blank_lr: float,
                blank_weight: float, blank_scenes: int) -> dict[str, Any]:
    """Train the world BLIP on the shapes world; write it to ``out_dir``; return its scores.

    Two phases: ``warm_steps`` train the vision encoder alone on what each scene holds, through
    linear heads that are thrown away - per scene (how many shapes, the shape of a one-shape
    scene, which colour-shape pairs) and per patch (which colour-shape covers it, and a density
    that sums to the number of shapes); then the whole model learns to answer, with those
    losses kept as auxiliary terms. For "is there a <colour> <shape>?" the text encoder's first
    cross-attention head is also told where to look, at the shape word: the patches of that
    colour and shape, or the image's CLS token when there are none (and its first self-attention
    head to read the colour word there). Without that hint the answer loss alone leaves the
    question at chance for hundreds of steps. Matrix products run in bfloat16 (CPU autocast);
    the weights, the losses and the saved model stay float32.

    Then outlier exposure (Hendrycks et al. 2019, fine-tuning as the paper does) teaches it to be
    unsure on a canvas with no shape: ``blank_steps`` more steps at ``blank_lr`` x ``lr`` whose
    batches hold ``blank_batch`` scenes with no shape (from a pool of ``blank_scenes`` drawn by a
    random stream of their own) next to the usual shape scenes; the steps before are exactly those
    of a build without them. There "how many" is "zero" and "is there" is "no"; a colour or shape
    question, which has no right answer, is trained towards the uniform distribution over the
    colour (or shape) words at the answer's first token, each such question weighing
    ``blank_weight`` answer tokens in the batch's mean answer loss. Without them the model had
    never seen an empty scene and named a colour there with confidence 0.86.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from services.common.torch_training import clipped_step
    from services.vqa.world import shapes

    started = time.monotonic()
    random.seed(seed)
    torch.manual_seed(seed)
    model, processor = _make("world", world_vocab=True)
    spec = SIZES["world"]["vision"]
    side, hidden = spec["image_size"], spec["hidden_size"]
    grid = side // spec["patch_size"]
    embeddings = model.vision_model.embeddings
    with torch.no_grad():
        bank = edge_colour_bank(embeddings.patch_embedding.kernel_size[0], embeddings.patch_embedding.out_channels)
        embeddings.patch_embedding.weight[: len(bank)] = bank
        embeddings.position_embedding.copy_(position_init(grid, hidden))
    rng = random.Random(seed)
    scenes = [shapes.sample_scene(rng, 1 if rng.random() < 0.4 else rng.randint(2, shapes.MAX_SHAPES))
              for _ in range(train_scenes)]
    questions = [shapes.questions_for(sc, rng, both_exists=True) for sc in scenes]
    blank_rng = random.Random(seed + 1)
    blanks = [shapes.blank_scene(blank_rng) for _ in range(blank_scenes if blank_steps else 0)]
    scenes += blanks
    questions += [[*shapes.questions_for(sc, blank_rng),
                   shapes.Example(sc, blank_rng.choice(shapes.COLOR_QUESTIONS), "", "color"),
                   shapes.Example(sc, blank_rng.choice(shapes.SHAPE_QUESTIONS), "", "shape")] for sc in blanks]
    pixels = pixel_batch(processor, [shapes.render(sc, side) for sc in scenes])
    targets = [scene_targets(sc) for sc in scenes]
    counts = torch.tensor([t[0] for t in targets])
    single = torch.tensor([t[1] for t in targets])
    present = torch.tensor([t[2] for t in targets])
    per_patch = [patch_targets(sc, side, grid) for sc in scenes]
    cover = torch.tensor(np.stack([t[0] for t in per_patch]))  # scenes x patches x (1 + colour-shapes)
    density, centre = torch.tensor(np.stack([t[1] for t in per_patch])).unbind(1)
    n_count, n_shape, n_colour = shapes.MAX_SHAPES, len(shapes.SHAPES), len(shapes.COLORS)
    by_pair = cover[..., 1:].reshape(*cover.shape[:2], n_colour, n_shape)
    colour_cover = torch.cat([cover[..., :1], by_pair.sum(-1)], -1)
    shape_cover = torch.cat([cover[..., :1], by_pair.sum(-2)], -1)
    if progress:
        progress("data", 0, steps, {"scenes": len(scenes), "questions": sum(map(len, questions))})
    n_pairs = present.shape[1]
    scene_head = torch.nn.Linear(hidden, n_count + n_shape + n_pairs)
    # per patch: colour-shape (+ background), colour (+ bg), shape (+ bg), density, shape centre
    patch_head = torch.nn.Linear(hidden, (n_pairs + 1) + (n_colour + 1) + (n_shape + 1) + 2)
    with torch.no_grad():
        patch_head.weight[-2].zero_()
        patch_head.bias[-2].zero_()

    def soft_ce(logits: Any, target: Any) -> Any:
        return -(target * F.log_softmax(logits, -1)).sum(-1).mean()

    def aux_loss(embeds: Any, idx: Any) -> Any:
        logits = scene_head(embeds[:, 1:].mean(1))
        loss = F.cross_entropy(logits[:, :n_count], counts[idx], ignore_index=-100)
        if bool((single[idx] >= 0).any()):
            loss = loss + F.cross_entropy(logits[:, n_count:n_count + n_shape], single[idx], ignore_index=-100)
        loss = loss + 4 * F.binary_cross_entropy_with_logits(logits[:, n_count + n_shape:], present[idx])
        out = patch_head(embeds[:, 1:])
        a, b, c = n_pairs + 1, n_pairs + 1 + n_colour + 1, n_pairs + 1 + n_colour + 1 + n_shape + 1
        loss = loss + soft_ce(out[..., :a], cover[idx]) + soft_ce(out[..., a:b], colour_cover[idx])
        loss = loss + soft_ce(out[..., b:c], shape_cover[idx])
        d = out[..., -2]
        loss = loss + F.binary_cross_entropy_with_logits(out[..., -1], centre[idx]) * 4
        return loss + F.mse_loss(d, density[idx]) * grid * grid + 0.25 * F.mse_loss(d.sum(1), density[idx].sum(1))

    tok = processor.tokenizer
    # tokenized once: tokenizing every step costs as much as the text side of the model
    flat = [ex for qs in questions for ex in qs]
    q_all = tok([ex.question for ex in flat], padding="longest", return_tensors="pt")
    a_all = tok([ex.answer for ex in flat], padding="longest", return_tensors="pt")
    first = [0]
    for qs in questions:
        first.append(first[-1] + len(qs))
    # where the text encoder's first cross-attention head should look, from the question's last
    # word (the shape word of "is there a red circle?"): the asked colour-shape's patches (or CLS
    # when there are none); the shapes' patches for colour and shape questions; for "how many",
    # CLS and the centre patch of every shape (CLS then gets 3 / (count + 3))
    shape_ids = {tok.convert_tokens_to_ids(w): i for i, w in enumerate(shapes.SHAPES)}
    colour_ids = {tok.convert_tokens_to_ids(w): i for i, w in enumerate(shapes.COLORS)}
    kinds = {"exists": 0, "color": 1, "shape": 1, "count": 2}
    last_word = q_all["attention_mask"].sum(1) - 3  # [CLS] ... word ? [SEP]
    ask_kind = torch.tensor([kinds[ex.kind] for ex in flat])
    ask_pair = torch.zeros(len(flat), dtype=torch.long)
    row_scene = torch.tensor([i for i, qs in enumerate(questions) for _ in qs])
    for r, ex in enumerate(flat):
        if ex.kind == "exists":
            ids = q_all["input_ids"][r].tolist()
            at = int(last_word[r])
            ask_pair[r] = colour_ids[ids[at - 1]] * n_shape + shape_ids[ids[at]] + 1
    # a colour or shape question about a blank scene (no answer): its target is uniform over the
    # colour words (row 0) or the shape words (row 1)
    unsure = torch.tensor([("color", "shape").index(ex.kind) if not ex.scene.items and ex.kind in ("color", "shape")
                           else -1 for ex in flat])
    uniform = torch.zeros(2, len(tok))
    for row, words in enumerate((shapes.COLORS, shapes.SHAPES)):
        uniform[row, tok.convert_tokens_to_ids(list(words))] = 1 / len(words)
    attention: dict[str, Any] = {}
    layer, reader = model.text_encoder.encoder.layer[0], model.text_decoder.bert.encoder.layer[0]
    hooks = [layer.crossattention.self.register_forward_hook(lambda m, i, o: attention.__setitem__("cross", o[1])),
             layer.attention.self.register_forward_hook(lambda m, i, o: attention.__setitem__("self", o[1])),
             reader.crossattention.self.register_forward_hook(lambda m, i, o: attention.__setitem__("read", o[1]))]

    def look_loss(pick: Any) -> Any:
        n, pos, kind, scene = torch.arange(len(pick)), last_word[pick], ask_kind[pick], row_scene[pick]
        asked = cover[scene, :, ask_pair[pick]]  # patches covered by the asked colour-shape
        shapes_there = 1 - cover[scene, :, 0]
        share = torch.where((kind == 0)[:, None], asked, shapes_there)
        total = share.sum(1, keepdim=True)
        there = (total >= 0.05).float()
        target = torch.cat([1 - there, share / total.clamp_min(1e-6) * there], 1)
        # "how many": CLS (weight 3) and the centre patch of every shape (weight 1) - CLS gets 3 / (3 + n),
        # which tells three from four shapes better than 1 / (1 + n)
        counting = torch.cat([torch.full((len(pick), 1), 3.0), centre[scene]], 1)
        target = torch.where((kind == 2)[:, None], counting / counting.sum(1, keepdim=True), target)
        cross = attention["cross"][:, 0].float()[n, pos]  # head 0 at the last word, over CLS + patches
        loss = -(target * (cross + 1e-6).log()).sum(-1).mean()
        # the decoder's first cross-attention head reads that word when it starts the answer
        loss = loss - (attention["read"][:, 0, 0].float()[n, pos] + 1e-6).log().mean()
        exists = (kind == 0).nonzero().flatten()
        if len(exists):  # ... and its first self-attention head reads the colour word there
            colour = attention["self"][exists, 0].float()[torch.arange(len(exists)), pos[exists], pos[exists] - 1]
            loss = loss - (colour + 1e-6).log().mean()
        return loss

    params = [p for p in model.parameters() if p.requires_grad] + list(scene_head.parameters()) + \
        list(patch_head.parameters())
    total = warm_steps + steps
    tail = total + blank_steps
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=True)  # one kernel, not one per tensor
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
        if s < total else blank_lr)
    model.train()
    loss_avg = None
    for step in range(1, tail + 1):
        size = scenes_per_batch if step > warm_steps else 64
        picked = rng.sample(range(train_scenes), min(train_scenes, size))
        if step > total:
            picked += blank_rng.sample(range(train_scenes, len(scenes)), min(len(blanks), blank_batch))
        idx = torch.tensor(picked)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            embeds = model.vision_model(pixel_values=pixels[idx])[0]
        loss = aux_loss(embeds.float(), idx)
        if step > warm_steps:
            rows = [(j, k) for j, i in enumerate(idx.tolist()) for k in range(first[i], first[i + 1])]
            pick = torch.tensor([k for _, k in rows])
            qw = int(q_all["attention_mask"][pick].sum(dim=1).max())
            aw = int(a_all["attention_mask"][pick].sum(dim=1).max())
            a_ids, a_mask, no_answer = a_all["input_ids"][pick, :aw], a_all["attention_mask"][pick, :aw], unsure[pick]
            labels = a_ids.masked_fill((a_mask == 0) | (no_answer >= 0)[:, None], -100)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = _answer_output(model, None, q_all["input_ids"][pick, :qw], q_all["attention_mask"][pick, :qw],
                                     a_ids, a_mask, labels, image_embeds=embeds[torch.tensor([j for j, _ in rows])])
            answer_loss = out.loss.float()
            blank = (no_answer >= 0).nonzero().flatten()
            if len(blank):  # one mean over the answer tokens and the blank questions (each weighing blank_weight)
                tokens = int((labels[:, 1:] != -100).sum())
                unsure_loss = soft_ce(out.logits[blank, 0].float(), uniform[no_answer[blank]]) * len(blank)
                answer_loss = (answer_loss * tokens + blank_weight * unsure_loss) / (tokens + blank_weight * len(blank))
            loss = answer_loss + 0.5 * loss + look_loss(pick)
        clipped_step(loss, params, optimiser, schedule)
        value = float(loss.detach())
        loss_avg = value if loss_avg is None or step == warm_steps + 1 else 0.95 * loss_avg + 0.05 * value
        if progress and (step % 50 == 0 or step == tail):
            phase = "vision" if step <= warm_steps else "answer" if step <= total else "blank"
            progress(phase, step, tail, {"loss": round(loss_avg, 4)})
    for hook in hooks:
        hook.remove()
    model.eval()
    held = shapes.examples(seed + 10_000, heldout_examples)
    held_pixels = pixel_batch(processor, [shapes.render(ex.scene, side) for ex in held])
    got = answer(model, processor, held_pixels, [ex.question for ex in held])
    metrics = score(got, held)
    metrics.update(evaluate_redrawn(model, processor, got, held))
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    metrics["steps"] = {"vision": warm_steps, "answer": steps, "blank": blank_steps}
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return metrics


def evaluate_redrawn(model: Any, processor: Any, got_held: list[tuple[str, float]], held: list[Any],
                     count: int = 300, blanks: int = 40) -> dict[str, Any]:
    """Accuracy on scenes drawn by the second renderer (``shapes_redraw``, full size: the processor
    resizes them as the runtime does), the confidence on images with no shape, and confidence bins
    against accuracy over both held-out sets."""
    from services.common.calibration import below, calibration_table
    from services.vqa.world import shapes, shapes_redraw

    pairs = shapes_redraw.redrawn_examples(shapes_redraw.REDRAW_SEED, count)
    redrawn = [ex for ex, _ in pairs]
    got = answer(model, processor, pixel_batch(processor, [shapes_redraw.draw(ex.scene, look) for ex, look in pairs]),
                 [ex.question for ex in redrawn])
    rng = random.Random(shapes_redraw.REDRAW_SEED + 1)
    empty = shapes.Scene((), (255, 255, 255), 0.0, (64, 64), 0)
    questions = [*shapes.COLOR_QUESTIONS, *shapes.SHAPE_QUESTIONS]
    got_blank = answer(model, processor, pixel_batch(processor, [
        shapes_redraw.draw(empty, shapes_redraw.sample_look(rng)) for _ in range(blanks)]),
        [questions[i % len(questions)] for i in range(blanks)])
    both = list(zip(got_held + got, held + redrawn, strict=True))
    return {"second_renderer": score(got, redrawn)["heldout"], "no_shape": below([c for _, c in got_blank]),
            "calibration": calibration_table([g[1] for g, _ in both], [g[0] == t.answer for g, t in both])}


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
