"""Regenerate data/samples/ deterministically (images drawn with PIL, small QA/VQA sets)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "data" / "samples"

SHAPES = [
    ("red_square.png", "red", "square"),
    ("blue_circle.jpg", "blue", "circle"),
    ("green_triangle.png", "green", "triangle"),
    ("yellow_square.jpg", "yellow", "square"),
    ("orange_circle.png", "orange", "circle"),
    ("purple_triangle.jpg", "purple", "triangle"),
]


def draw(color: str, shape: str, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """One shape in one of the world's colours (services/vqa/world/shapes.py), not PIL's named colour:
    PIL's "blue" is (0, 0, 255), the world's blue (35, 70, 215), and the offline model only knows
    the world's (docs/world.md)."""
    from services.vqa.world.shapes import COLORS

    fill = COLORS.get(color, color)
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    w, h = size
    box = (w // 4, h // 6, 3 * w // 4, 5 * h // 6)
    if shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "circle":
        d.ellipse(box, fill=fill)
    else:
        d.polygon([(w // 2, h // 6), (w // 4, 5 * h // 6), (3 * w // 4, 5 * h // 6)], fill=fill)
    return img


def style_image(size: int = 128) -> Image.Image:
    img = Image.new("RGB", (size, size), "navy")
    d = ImageDraw.Draw(img)
    for i in range(0, size, 16):
        d.line([(i, 0), (size - i, size)], fill="gold", width=4)
        d.ellipse((i, i, i + 12, i + 12), fill="crimson")
    return img


def main() -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    (OUT / "content").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, color, shape in SHAPES:
        img = draw(color, shape)
        img.save(OUT / "images" / name, quality=90) if name.endswith(".jpg") else img.save(OUT / "images" / name)
        rows.append({"image_path": f"samples/images/{name}", "question": "what color is the shape?", "answer": color})
        rows.append({"image_path": f"samples/images/{name}", "question": "what shape is this?", "answer": shape})
    with (OUT / "vqa.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image_path", "question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    for i, (_, color, shape) in enumerate(SHAPES[:4]):
        draw(color, shape, (96, 96)).save(OUT / "content" / f"content_{i}.png")
    style_image().save(OUT / "style.png")
    contexts = [
        ("France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower and Louvre Museum.",
         [("What is the capital of France?", "Paris"), ("Where is France?", "Europe")]),
        ("The red chair stands next to a blue table. A green lamp is on the table.",
         [("What color is the chair?", "red"), ("What is on the table?", "A green lamp")]),
        ("Loopline serves three model families behind one gateway. It was built in 2026 by a small team.",
         [("When was Loopline built?", "2026"), ("How many model families does Loopline serve?", "three")]),
    ]
    data = []
    for ci, (context, qas) in enumerate(contexts):
        data.append({"title": f"sample-{ci}", "paragraphs": [{"context": context, "qas": [
            {"id": f"q{ci}-{qi}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for qi, (q, a) in enumerate(qas)]}]})
    (OUT / "qa.json").write_text(json.dumps({"version": "1.1", "data": data}, indent=2) + "\n", encoding="utf-8")


def world_samples() -> None:
    """A few items of each synthetic world (docs/world.md), drawn by the same code the models train on."""
    import sys

    sys.path.insert(0, str(OUT.parent.parent))
    from services.qa.world import facts
    from services.style.world import styles
    from services.vqa.world import shapes

    folder = OUT / "world"
    folder.mkdir(parents=True, exist_ok=True)
    rows, names = [], {}
    for ex in shapes.examples(seed=2026, count=24):
        if id(ex.scene) not in names:  # a scene answers several questions
            names[id(ex.scene)] = f"scene_{len(names):02d}.png"
            shapes.render(ex.scene).save(folder / names[id(ex.scene)])
        rows.append({"image_path": f"samples/world/{names[id(ex.scene)]}", "question": ex.question, "answer": ex.answer})
    with (OUT / "world-vqa.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image_path", "question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    items = facts.qa_items(seed=2026, count=20)
    data = [{"title": f"world-{i}", "paragraphs": [{"context": it.context, "qas": [
        {"id": f"w{i}", "question": it.question, "answers": [{"text": it.answer, "answer_start": it.answer_start}]}]}]}
        for i, it in enumerate(items)]
    (OUT / "world-qa.json").write_text(json.dumps({"version": "1.1", "data": data}, indent=2) + "\n", encoding="utf-8")
    (OUT / "styles").mkdir(exist_ok=True)
    for name in styles.STYLE_NAMES:
        styles.style_image(name).save(OUT / "styles" / f"{name}.png")


if __name__ == "__main__":
    main()
    world_samples()
