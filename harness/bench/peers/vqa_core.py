"""The VQA model as every peer serves it: BLIP (``BlipForQuestionAnswering``) in torch fp32,
greedy ``generate`` and the same answer text and confidence as Loopline's runtime
(services/vqa/runtime.py), with no Loopline import.

The peers' environments have torch, transformers, pillow and numpy but not Loopline's
kernel, so the image decode (``decode_image``: RGB with EXIF orientation applied), the greedy
call and the answer post-processing (``answers``, ``answer_confidence``) are copied here;
tests/integration/test_bench_peers.py checks the copies still agree with the originals: a
peer that answers differently from Loopline then does so because of its serving path, not
because of a different decoder.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

try:  # inside a peer's environment (PYTHONPATH is this folder)
    from batch_log import logged_batch
except ImportError:  # imported from the project (the tests)
    from .batch_log import logged_batch

MAX_NEW_TOKENS = 10  # Loopline's LOOPLINE_VQA_MAX_NEW_TOKENS default


def decode_image(image_b64: str, draft_side: int | None = None) -> Any:
    """base64 JPEG/PNG/WebP -> RGB PIL image, EXIF orientation applied (as services/common/images.py)."""
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(base64.b64decode(image_b64)))
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":
        img.seek(0)
    if draft_side and img.format in ("JPEG", "MPO"):
        img.draft("RGB", (draft_side, draft_side))
    img.load()
    img = ImageOps.exif_transpose(img) or img
    return img.convert("RGB")


def answer_confidence(step_logprobs: list[list[float]]) -> list[float]:
    """Geometric-mean token probability per answer."""
    return [round(math.exp(sum(lps) / len(lps)), 6) if lps else 0.0 for lps in step_logprobs]


def answers(generated: np.ndarray, scores: list[np.ndarray], eos_id: int, pad_id: int,
            tokenizer: Any) -> list[dict[str, Any]]:
    """``{"answer", "confidence"}`` per row from the greedy ids (an ended answer padded) and each step's logits."""
    rows = generated.shape[0]
    step_lps: list[list[float]] = [[] for _ in range(rows)]
    done = [False] * rows
    for t, logits in enumerate(scores):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        for b in range(rows):
            if done[b]:
                continue  # past the end of this answer: padding
            token = int(generated[b, t])
            step_lps[b].append(float(logprobs[b, token]))
            done[b] = token in (eos_id, pad_id)
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [{"answer": a.strip(), "confidence": c} for a, c in zip(texts, answer_confidence(step_lps), strict=True)]


class VqaModel:
    """BLIP VQA, batched: ``predict([(image_b64, question), ...])``."""

    def __init__(self, model_dir: str | Path, threads: int | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        import torch
        from transformers import BlipForQuestionAnswering, BlipProcessor

        threads = threads or int(os.environ.get("PEER_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = BlipForQuestionAnswering.from_pretrained(model_dir).eval()
        self.processor = BlipProcessor.from_pretrained(model_dir)
        self.image_side = int(self.model.config.vision_config.image_size)
        self.eos_id = self.processor.tokenizer.sep_token_id
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.max_new_tokens = max_new_tokens
        from PIL import Image

        warm = io.BytesIO()
        Image.new("RGB", (self.image_side, self.image_side), "gray").save(warm, format="PNG")
        self.predict([(base64.b64encode(warm.getvalue()).decode("ascii"), "what is this?")])

    def generate(self, pixels: Any, questions: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Greedy answer ids (an ended answer padded) and each step's logits, as Loopline's torch path."""
        text = self.processor.tokenizer(questions, padding="longest", return_tensors="pt")
        with self.torch.inference_mode():
            out = self.model.generate(pixel_values=pixels, input_ids=text["input_ids"],
                                      attention_mask=text["attention_mask"], max_new_tokens=self.max_new_tokens,
                                      do_sample=False, num_beams=1, output_scores=True, return_dict_in_generate=True)
        sequences = out.sequences
        generated = sequences[:, -len(out.scores):] if out.scores else sequences[:, :0]
        return generated.numpy(), [step.float().numpy() for step in out.scores]

    def predict(self, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The answers of one batch; logs its size and time (batch_log.py) for the bench's batch figures."""
        return logged_batch(len(batch), lambda: self._predict(batch))

    def _predict(self, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        images = [decode_image(image, self.image_side) for image, _ in batch]
        pixels = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        generated, scores = self.generate(pixels, [q.strip() for _, q in batch])
        return answers(generated, scores, self.eos_id, self.pad_id, self.processor.tokenizer)
