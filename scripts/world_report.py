"""Print what the tiny world models know: held-out scores from the manifests (in-generator, and
the sets that test generalisation, with calibration tables), and mean confidence in world vs
out of world measured through the serving runtimes.

    python scripts/world_report.py [DATA_DIR]      (default: ./data)
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.registry import Registry  # noqa: E402
from services.common.torch_training import runtime_predict  # noqa: E402
from services.qa.world import facts  # noqa: E402
from services.vqa.world import shapes  # noqa: E402

OUT_OF_WORLD_QA = [
    ("How does photosynthesis work?", "Plants convert light into chemical energy using chlorophyll in their leaves."),
    ("Why is the ocean salty?", "Rivers carry dissolved minerals from rocks to the sea, where water evaporates."),
    ("What is the boiling point of water?", "At sea level pure water boils at one hundred degrees Celsius."),
    ("What does a compiler do?", "A compiler translates source code written in one language into machine code."),
]
ODD_QUESTIONS = ["what is the man holding?", "why is the sky dark?", "what brand is the car?", "where is this?"]


def b64(image) -> str:  # noqa: ANN001
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    import numpy as np
    from PIL import Image

    data = Path(sys.argv[1] if len(sys.argv) > 1 else "data").resolve()
    reg = Registry(data / "registry")
    metrics = {m: reg.manifest(m, reg.resolve(m))["metrics"] for m in reg.models()}
    report: dict = {"heldout": {m: v.get("heldout") for m, v in metrics.items()},
                    # the held-out sets that test generalisation, and confidence bins against accuracy
                    "generalisation": {m: {k: v[k] for k in ("unseen", "second_renderer", "off_world", "no_shape",
                                                             "calibration") if k in v}
                                       for m, v in metrics.items() if "calibration" in v}}
    rng = np.random.default_rng(0)
    vqa = reg.resolve("vqa-blip")
    inside = runtime_predict("vqa", reg, data, "vqa-blip", vqa, [
        {"image_b64": b64(shapes.render(ex.scene)), "question": ex.question} for ex in shapes.examples(777, 100)])
    noise = runtime_predict("vqa", reg, data, "vqa-blip", vqa, [
        {"image_b64": b64(Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))),
         "question": ODD_QUESTIONS[i % 4]} for i in range(40)])
    pink = runtime_predict("vqa", reg, data, "vqa-blip", vqa, [
        {"image_b64": b64(shapes.render(ex.scene)), "question": ex.question} for ex in shapes.drift_examples(5, 40)])
    qa = reg.resolve("qa-extractive")
    qa_in = runtime_predict("qa", reg, data, "qa-extractive", qa, [
        {"question": it.question, "context": it.context} for it in facts.qa_items(777, 100)])
    qa_out = runtime_predict("qa", reg, data, "qa-extractive", qa, [
        {"question": q, "context": c} for q, c in OUT_OF_WORLD_QA])
    mean = lambda rows: round(statistics.fmean(r["confidence"] for r in rows), 3)  # noqa: E731
    report["mean_confidence"] = {"vqa_in_world": mean(inside), "vqa_noise_images_foreign_questions": mean(noise),
                                 "vqa_unseen_colour_pink": mean(pink), "qa_in_world": mean(qa_in),
                                 "qa_out_of_world": mean(qa_out)}
    report["share_above_0.75"] = {"vqa_in_world": round(sum(r["confidence"] > 0.75 for r in inside) / len(inside), 3),
                                  "qa_in_world": round(sum(r["confidence"] > 0.75 for r in qa_in) / len(qa_in), 3)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
