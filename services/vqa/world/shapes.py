"""The VQA world: flat shapes on plain or noisy light backgrounds, and questions about them.

A scene holds 1-4 non-overlapping shapes (circle, square, triangle) in six colours
(red, green, blue, yellow, orange, purple) at any position and size, drawn on a canvas of
random size and aspect (so the model sees the squashing that resizing a 160x120 photo to
its input causes). Questions, each with close paraphrases:

* colour and shape of the shape (one-shape scenes): ``what color is the shape?`` -> ``red``,
  ``what is this item?`` -> ``square``
* count: ``how many shapes are there?`` -> ``one`` ... ``four``
* existence: ``is there a red circle?`` -> ``yes`` / ``no``

``blank_scene`` draws the background alone: there, "how many" is ``zero``, "is there" is ``no``,
and colour and shape questions have no right answer (the VQA build teaches it to be unsure).

Everything is a pure function of a seed. ``DRIFT_COLORS`` are colours the base model never
sees (their words are in the tokenizer): the drift scenario's shifted traffic.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35), "green": (35, 160, 55), "blue": (35, 70, 215),
    "yellow": (240, 215, 40), "orange": (250, 140, 25), "purple": (135, 45, 170),
}
DRIFT_COLORS: dict[str, tuple[int, int, int]] = {"pink": (250, 125, 195)}
SHAPES = ("circle", "square", "triangle")
NUMBERS = ("zero", "one", "two", "three", "four")
MAX_SHAPES = 4

COLOR_QUESTIONS = ("what color is the shape?", "what colour is the shape?", "what color is it?",
                   "what color is this?", "which color is the object?", "what is the color of the shape?",
                   "what colour is this item?")
SHAPE_QUESTIONS = ("what shape is this?", "what shape is it?", "what is this item?", "what is this?",
                   "what kind of shape is this?", "which shape is shown?", "what object is this?")
COUNT_QUESTIONS = ("how many shapes are there?", "how many objects are in the picture?",
                   "how many shapes do you see?", "how many items are there?", "count the shapes.")
EXIST_QUESTIONS = ("is there a {color} {shape}?", "is there any {color} {shape}?", "do you see a {color} {shape}?",
                   "can you see a {color} {shape}?")
QUESTION_KINDS = ("color", "shape", "count", "exists")


@dataclass(frozen=True)
class Item:
    """One drawn shape: bounding box in unit coordinates (x0, y0, x1, y1)."""

    color: str
    shape: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    items: tuple[Item, ...]
    background: tuple[int, int, int]
    noise: float
    canvas: tuple[int, int]
    seed: int


@dataclass(frozen=True)
class Example:
    scene: Scene
    question: str
    answer: str
    kind: str


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], gap: float = 0.04) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def sample_scene(rng: random.Random, n: int | None = None, colors: dict[str, tuple[int, int, int]] | None = None,
                 force_color: str | None = None) -> Scene:
    """A random scene; ``force_color`` paints the first shape in that colour (drift scenes)."""
    palette = colors or COLORS
    n = n or rng.randint(1, MAX_SHAPES)
    items: list[Item] = []
    biggest = {1: 0.8, 2: 0.45, 3: 0.38, 4: 0.34}[n]
    while len(items) < n:
        w = rng.uniform(0.2, biggest)
        h = min(0.9, w * rng.uniform(0.75, 1.33))
        x0, y0 = rng.uniform(0.03, 0.97 - w), rng.uniform(0.03, 0.97 - h)
        box = (x0, y0, x0 + w, y0 + h)
        if any(_overlaps(box, it.box) for it in items):
            continue
        color = force_color if force_color and not items else rng.choice(list(palette))
        items.append(Item(color, rng.choice(SHAPES), box))
    return _on_backdrop(tuple(items), rng)


def blank_scene(rng: random.Random) -> Scene:
    """A scene with no shape: the background, noise and canvas of :func:`sample_scene` alone."""
    return _on_backdrop((), rng)


def _on_backdrop(items: tuple[Item, ...], rng: random.Random) -> Scene:
    grey = rng.randint(200, 255)
    background = tuple(max(0, min(255, grey + rng.randint(-12, 12))) for _ in range(3))
    noise = 0.0 if rng.random() < 0.5 else rng.uniform(4.0, 16.0)
    canvas = (rng.randint(64, 160), rng.randint(64, 160))
    return Scene(items, background, noise, canvas, rng.randrange(2**31))  # type: ignore[arg-type]


def render(scene: Scene, side: int | None = None) -> Any:
    """The scene as a PIL RGB image (canvas size, or resized to ``side`` x ``side``)."""
    import numpy as np
    from PIL import Image, ImageDraw

    W, H = scene.canvas
    img = Image.new("RGB", (W, H), scene.background)
    draw = ImageDraw.Draw(img)
    rng = random.Random(scene.seed)
    all_colors = {**COLORS, **DRIFT_COLORS}
    for it in scene.items:
        base = all_colors[it.color]
        fill = tuple(max(0, min(255, c + rng.randint(-15, 15))) for c in base)
        x0, y0, x1, y1 = it.box[0] * W, it.box[1] * H, it.box[2] * W, it.box[3] * H
        if it.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif it.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=fill)
    if scene.noise:
        arr = np.asarray(img, dtype=np.float32)
        arr += np.random.default_rng(scene.seed).normal(0, scene.noise, arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if side:
        img = img.resize((side, side), Image.Resampling.BICUBIC)
    return img


def questions_for(scene: Scene, rng: random.Random, both_exists: bool = False) -> list[Example]:
    """Every question kind that has one right answer in this scene (one paraphrase each);
    ``both_exists`` asks the existence question twice, once with each answer (training)."""
    out = []
    if len(scene.items) == 1:
        it = scene.items[0]
        out.append(Example(scene, rng.choice(COLOR_QUESTIONS), it.color, "color"))
        out.append(Example(scene, rng.choice(SHAPE_QUESTIONS), it.shape, "shape"))
    out.append(Example(scene, rng.choice(COUNT_QUESTIONS), NUMBERS[len(scene.items)], "count"))
    present = {(it.color, it.shape) for it in scene.items}
    first_yes = rng.random() < 0.5 and bool(present)
    for yes in ((True, False) if both_exists and present else (first_yes,)):
        if yes:
            color, shape = rng.choice(sorted(present))
        else:
            absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
            # near misses (right colour or right shape) teach binding, not just "is red there"
            near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
            color, shape = rng.choice(near if near and rng.random() < 0.7 else absent)
        out.append(Example(scene, rng.choice(EXIST_QUESTIONS).format(color=color, shape=shape),
                           "yes" if yes else "no", "exists"))
    return out


def examples(seed: int, count: int, single_share: float = 0.4) -> list[Example]:
    """``count`` examples from fresh scenes; ``single_share`` of the scenes hold one shape."""
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < count:
        n = 1 if rng.random() < single_share else rng.randint(2, MAX_SHAPES)
        out.extend(questions_for(sample_scene(rng, n), rng))
    return out[:count]


def drift_examples(seed: int, count: int, color: str = "pink") -> list[Example]:
    """Shifted traffic: one shape in a colour the base model never saw, asked for its colour."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        scene = sample_scene(rng, 1, force_color=color)
        out.append(Example(scene, rng.choice(COLOR_QUESTIONS), color, "drift-color"))
    return out


def iter_rows(examples_: list[Example]) -> Iterator[tuple[str, str]]:
    for ex in examples_:
        yield ex.question, ex.answer
