"""Build the world VQA model the way the bootstrap does (services/vqa/build.py ``build_tiny``, one
thread, seed 0) and print what docs/world.md reports about it: held-out scores in-generator and on
the second renderer, the calibration bins, confidence on images with no shape, and the build's wall
and CPU time. Also probes the saved model on more blank canvases than the manifest's 40 (both
renderers, every question kind), so a change to the recipe can be judged before and after.

    nice -n 10 python scripts/vqa_build_report.py [OUT_DIR [NAME=VALUE ...]]

OUT_DIR defaults to a temporary folder; NAME=VALUE pairs override ``build_tiny``'s keyword
arguments (numbers), e.g. ``blank_weight=0.2``.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.calibration import below  # noqa: E402
from services.vqa.build import answer, build_tiny, pixel_batch  # noqa: E402
from services.vqa.world import shapes, shapes_redraw  # noqa: E402

BLANKS = 120  # per renderer


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def blank_probe(out_dir: Path) -> dict:
    """The saved model on blank canvases: mean confidence and share below 0.75 per question kind
    and renderer, and what it answers to "how many" and "is there" there."""
    from transformers import BlipForQuestionAnswering, BlipProcessor

    model = BlipForQuestionAnswering.from_pretrained(out_dir).eval()
    processor = BlipProcessor.from_pretrained(out_dir)
    rng = random.Random(2026)
    images = {
        "generator": [shapes.render(shapes.Scene((), tuple(max(0, min(255, g + rng.randint(-12, 12))) for _ in range(3)),
                                                 rng.choice((0.0, rng.uniform(4, 16))),
                                                 (rng.randint(64, 160), rng.randint(64, 160)), rng.randrange(2**31)))
                      for g in (rng.randint(200, 255) for _ in range(BLANKS))],
        "second_renderer": [shapes_redraw.draw(shapes.Scene((), (255, 255, 255), 0.0, (64, 64), 0),
                                               shapes_redraw.sample_look(rng)) for _ in range(BLANKS)],
    }
    asks = {"color": shapes.COLOR_QUESTIONS, "shape": shapes.SHAPE_QUESTIONS, "count": shapes.COUNT_QUESTIONS,
            "exists": [q.format(color=c, shape=s) for q in shapes.EXIST_QUESTIONS for c in shapes.COLORS
                       for s in shapes.SHAPES]}
    report: dict = {}
    for renderer, imgs in images.items():
        pixels = pixel_batch(processor, imgs)
        for kind, questions in asks.items():
            got = answer(model, processor, pixels, [questions[i % len(questions)] for i in range(len(imgs))])
            answers: dict[str, int] = {}
            for text, _ in got:
                answers[text] = answers.get(text, 0) + 1
            report[f"{renderer}/{kind}"] = {**below([c for _, c in got]), "answers": dict(sorted(answers.items()))}
    return report


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="vqa-build-"))
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.monotonic(), _cpu_seconds()
    overrides = {k: float(v) if "." in v else int(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])}
    metrics = build_tiny(out, seed=0, **overrides)
    timing = {"wall_seconds": round(time.monotonic() - wall, 1), "cpu_seconds": round(_cpu_seconds() - cpu, 1)}
    with open("/proc/loadavg") as fh:
        timing["load_average_after"] = fh.read().split()[:3]
    report = {"heldout": metrics["heldout"], "second_renderer": metrics["second_renderer"],
              "calibration": metrics["calibration"], "no_shape": metrics["no_shape"], "build": timing,
              "no_shape_probe": blank_probe(out), "model_dir": str(out), "overrides": overrides}
    sure = [r for r in metrics["calibration"] if r["confidence"] == "0.90-1.00"]
    report["sure_right"] = sure[0]["accuracy"] if sure else None
    report["probe_mean_confidence_colour_shape"] = round(statistics.fmean(
        v["mean_confidence"] for k, v in report["no_shape_probe"].items() if k.endswith(("/color", "/shape"))), 4)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
