"""A second renderer for the shapes world, sharing no drawing code with ``shapes.render``:
the held-out set that tests whether the VQA model reads drawings made another way.

Shapes are rasterised here with numpy from signed distances (no PIL drawing): anti-aliased
(coverage from the distance) or hard-edged, filled or filled with a dark or light outline,
each colour jittered in hue and brightness, on a flat, gradient or noisy background, on a
canvas of any size and aspect, optionally saved as a low-quality JPEG. Scenes hold 1-4
separated shapes of any size with margins. Questions and answers are the world's.

``make models`` scores the VQA model on ``redrawn_examples(REDRAW_SEED, ...)`` next to its
in-generator held-out score.
"""

from __future__ import annotations

import colorsys
import io
import random
from dataclasses import dataclass
from typing import Any

from services.vqa.world import shapes

REDRAW_SEED = 26_027


@dataclass(frozen=True)
class Look:
    """How one scene is drawn."""

    width: int
    height: int
    antialias: bool
    outline: float  # outline width in pixels, 0 for none
    outline_dark: bool
    background: str  # flat | gradient | noise
    jpeg_quality: int  # 0: no JPEG
    seed: int


def sample_look(rng: random.Random) -> Look:
    width = rng.randint(40, 320)
    height = max(40, min(320, int(width * rng.uniform(0.5, 2.0))))
    return Look(width, height, rng.random() < 0.6, rng.choice((0, 0, 1.0, 2.0, 3.0)), rng.random() < 0.7,
                rng.choice(("flat", "gradient", "noise")), rng.choice((0, 0, 25, 45, 70)), rng.randrange(2**31))


def _jitter(rgb: tuple[int, int, int], rng: random.Random) -> tuple[float, float, float]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    h = (h + rng.uniform(-0.025, 0.025)) % 1.0
    s = min(1.0, max(0.0, s * rng.uniform(0.8, 1.1)))
    v = min(1.0, max(0.0, v * rng.uniform(0.85, 1.1)))
    return tuple(255 * c for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _distance(shape: str, xs: Any, ys: Any, box: tuple[float, float, float, float]) -> Any:
    """Signed distance in pixels to the shape's edge (negative inside)."""
    import numpy as np

    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "circle":
        r = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
        return (r - 1.0) * min(rx, ry)
    if shape == "square":
        return np.maximum(np.abs(xs - cx) - rx, np.abs(ys - cy) - ry)
    # triangle: apex at the top middle, base at the bottom; the largest of three half-plane distances
    edges = [((cx, y0), (x0, y1)), ((x1, y1), (cx, y0)), ((x0, y1), (x1, y1))]
    gx, gy = cx, (y0 + 2 * y1) / 3  # the centroid: every edge's normal is turned away from it
    out = None
    for (ax, ay), (bx, by) in edges:
        nx, ny = by - ay, ax - bx
        if (gx - ax) * nx + (gy - ay) * ny > 0:
            nx, ny = -nx, -ny
        norm = np.hypot(nx, ny)
        d = ((xs - ax) * nx + (ys - ay) * ny) / norm
        out = d if out is None else np.maximum(out, d)
    return out


def draw(scene: shapes.Scene, look: Look) -> Any:
    """The scene as a PIL image, drawn this module's way."""
    import numpy as np
    from PIL import Image

    rng = random.Random(look.seed)
    W, H = look.width, look.height
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    base = np.array([rng.randint(190, 255)] * 3, np.float32) + np.array([rng.randint(-15, 15) for _ in range(3)])
    img = np.broadcast_to(base, (H, W, 3)).copy()
    if look.background == "gradient":
        img += (xs / W - 0.5)[..., None] * rng.uniform(-40, 40) + (ys / H - 0.5)[..., None] * rng.uniform(-40, 40)
    elif look.background == "noise":
        img += np.random.default_rng(look.seed).normal(0, rng.uniform(3, 14), img.shape)
    colours = {**shapes.COLORS, **shapes.DRIFT_COLORS}
    for it in scene.items:
        fill = np.array(_jitter(colours[it.color], rng), np.float32)
        box = (it.box[0] * W, it.box[1] * H, it.box[2] * W, it.box[3] * H)
        d = _distance(it.shape, xs, ys, box)
        cover = np.clip(0.5 - d, 0, 1) if look.antialias else (d <= 0).astype(np.float32)
        img = img * (1 - cover[..., None]) + fill * cover[..., None]
        if look.outline:
            edge = fill * (0.45 if look.outline_dark else 0.0) + (0 if look.outline_dark else 0.55 * 255 + 0.45 * fill)
            band = np.clip(0.5 - np.abs(d + look.outline / 2) + look.outline / 2, 0, 1) * cover
            if not look.antialias:
                band = (band > 0.5).astype(np.float32)
            img = img * (1 - band[..., None]) + edge * band[..., None]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if look.jpeg_quality:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=look.jpeg_quality)
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out


def redrawn_examples(seed: int = REDRAW_SEED, count: int = 300) -> list[tuple[shapes.Example, Look]]:
    """``count`` world questions about scenes this renderer draws (fresh scenes and looks)."""
    rng = random.Random(seed)
    out: list[tuple[shapes.Example, Look]] = []
    while len(out) < count:
        n = 1 if rng.random() < 0.4 else rng.randint(2, shapes.MAX_SHAPES)
        scene = shapes.sample_scene(rng, n)
        look = sample_look(rng)
        out.extend((ex, look) for ex in shapes.questions_for(scene, rng))
    return out[:count]
