"""Typical inputs, generated deterministically: a 640x480 JPEG photo-like image and a short
question (VQA), 150- and 600-token contexts (QA), a 512x512 image (style)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from .load import json_body

QUESTION = "what color is the car on the left?"
QA_QUESTION = "what is the capital city of france?"
SENTENCES = [
    "france is a country in europe and its capital city is paris.",
    "the river that runs through the city is known for its many bridges.",
    "a museum near the tower holds one of the largest art collections of the country.",
    "many people visit the city in spring when the weather is mild and the parks are green.",
    "the old town has narrow streets with small shops that sell bread cheese and wine.",
]


def photo_jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A smooth colour field with texture: JPEG-compresses like a photograph, not like noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / (37 + 11 * c) + y / (53 + 7 * c) + c) for c in range(3)], axis=-1)
    texture = rng.normal(0, 12, size=(height, width, 3))
    pixels = np.clip(base + texture, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def context_of_tokens(tokenizer: Any, target_tokens: int) -> str:
    """Sentences appended until the context is ``target_tokens`` long in ``tokenizer``'s tokens."""
    words: list[str] = []
    i = 0
    while True:
        words.extend(SENTENCES[i % len(SENTENCES)].split())
        i += 1
        n = len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"])
        if n >= target_tokens:
            break
    while len(words) > 1 and len(tokenizer(" ".join(words[:-1]), add_special_tokens=False)["input_ids"]) >= target_tokens:
        words.pop()
    return " ".join(words)


@dataclass
class Workload:
    """One task input as the service body, the gateway body and the naive-baseline body."""

    task: str
    name: str
    body: dict[str, Any]

    def encoded(self) -> bytes:
        return json_body(self.body)


def vqa_workload() -> Workload:
    image = base64.b64encode(photo_jpeg(640, 480)).decode("ascii")
    return Workload("vqa", "640x480 JPEG + short question", {"question": QUESTION, "image_b64": image})


def qa_workloads(tokenizer: Any, lengths: tuple[int, ...] = (150, 600)) -> list[Workload]:
    return [Workload("qa", f"{n}-token context", {"question": QA_QUESTION, "context": context_of_tokens(tokenizer, n)})
            for n in lengths]


def style_workload(side: int = 512) -> Workload:
    image = base64.b64encode(photo_jpeg(side, side, seed=1)).decode("ascii")
    return Workload("style", f"{side}x{side} JPEG", {"style": "mosaic", "image_b64": image})
