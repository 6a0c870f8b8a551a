"""One peer cell of the bench per task, end to end: KServe's model server on the tiny QA and the
tiny VQA model, plus checks that the decoders copied for the peers (qa_core, vqa_core) still
agree with Loopline's.

KServe is the peer whose environment installs fastest (fewest packages, docs/performance.md
"Peers"). The environment is the one `make bench` builds under bench/results/cache/peers/
when present; otherwise a small overlay environment (only the pins the project's
environment lacks, about 16 packages, the rest shared read-only) is built once there and
reused, so the suite never pays the full torch install.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_peer_decoder_copy_matches_loopline() -> None:
    """qa_core copies best_span / snap_to_words for the peers' environments: the copies must agree."""
    from harness.bench.peers import qa_core
    from services.qa import runtime

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 60))
        s, e = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
        mask = rng.random(n) > 0.3
        assert qa_core.best_span(s, e, mask, 30) == runtime.best_span(s, e, mask, 30)
    text = "Jean-Luc met 2,400,000 people in Saint-Malo."
    for start, end in ((1, 3), (14, 16), (30, 33), (0, 44)):
        assert qa_core.snap_to_words(text, start, end) == runtime.snap_to_words(text, start, end)


def test_peer_vqa_decoder_copy_matches_loopline(tmp_path: Path) -> None:
    """vqa_core copies the image decode and the answer post-processing (text, confidence) for the
    peers' environments: given the same greedy ids and logits, both must give the same answers."""
    import base64

    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry
    from harness.bench.peers import vqa_core
    from harness.bench.workloads import photo_jpeg
    from services.common.images import decode_image
    from services.vqa.runtime import VqaRuntime, _load_base

    for raw in (photo_jpeg(640, 480), photo_jpeg(1200, 900, seed=3)):
        ours = decode_image(raw, 10**8, 10**8, draft_side=384)
        theirs = vqa_core.decode_image(base64.b64encode(raw).decode(), 384)
        assert theirs.size == ours.size and theirs.tobytes() == ours.tobytes()

    ensure_registry(tmp_path, ModelSizes.tiny(), ("vqa",))
    _, processor = _load_base(tmp_path / MODEL_OF_TASK["vqa"] / "1")
    tokenizer = processor.tokenizer
    eos, pad = tokenizer.sep_token_id, tokenizer.pad_token_id
    runtime = object.__new__(VqaRuntime)  # only predict's post-processing: no model is loaded
    runtime.processor, runtime.eos_id, runtime.pad_id = processor, eos, pad
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows, steps = int(rng.integers(1, 5)), int(rng.integers(1, 8))
        generated = rng.integers(5, tokenizer.vocab_size, size=(rows, steps))
        for b in range(rows):  # some answers end early (eos, then padding), some run to the last step
            end = int(rng.integers(0, steps + 2))
            if end < steps:
                generated[b, end] = eos
                generated[b, end + 1:] = pad
        scores = [rng.normal(size=(rows, tokenizer.vocab_size)).astype(np.float32) * 3 for _ in range(steps)]
        runtime._generate = lambda batch, g=generated, s=scores: (g, s)
        expected = runtime.predict([(None, "q")] * rows)
        assert vqa_core.answers(generated, scores, eos, pad, tokenizer) == expected


@pytest.mark.parametrize("task", ["qa", "vqa"])
def test_kserve_peer_cell_answers_like_loopline(tmp_path: Path, task: str) -> None:
    from harness.bench.models import ModelSizes
    from harness.bench.runner import BenchConfig, BenchRun

    config = BenchConfig(out_dir=tmp_path / "results", cache_dir=tmp_path / "cache", sizes=ModelSizes.tiny(),
                         tasks=(task,), concurrency=(1, 2), cell_seconds=0.5, cell_max_requests=6,
                         requests_per_client=1, qa_tokens=(150,), gateway=False, naive=False, efficiency=False,
                         accuracy=False, anchors=False, overload=False, label="peers",
                         # torch fp32 on both sides: the same decoder must then give the same answer
                         service_env={f"LOOPLINE_{task.upper()}_BF16": "off",
                                      f"LOOPLINE_{task.upper()}_BACKEND": "torch"},
                         peers=("kserve",), peer_env_dir=REPO / "bench" / "results" / "cache", peer_env_overlay=True)
    results = BenchRun(config, progress=lambda msg: None).run()

    assert results["peers_status"] == {task: {"kserve": "ran"}}, results["notes"]
    cells = {(c["variant"], c["concurrency"]): c for c in results["cells"]}
    for c in (1, 2):
        cell = cells[("peer:kserve", c)]
        assert cell["requests"] >= c and cell["errors"] == 0, cell
        assert 0 < cell["p50_ms"] <= cell["p95_ms"]
        assert cell["peak_rss_mb"]["peer:kserve"] > 50
        # KServe's Python server does not batch; its decoder's log gives the batch figures
        assert cell["mean_batch_size"] == 1.0 and 0 < cell["model_busy"] <= 1, cell
    opened = [r for r in results["open_loop"] if r.get("variant") == "peer:kserve"]
    assert opened and opened[0]["requests"] > 0
    workload = "150-token context" if task == "qa" else "640x480 JPEG + short question"
    answers = results["peer_answers"][workload]
    assert answers["kserve"]["answer"], answers
    assert answers["kserve"]["same_as_loopline"], answers
    run_dir = next((tmp_path / "results").glob("*-peers"))
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["peers_status"] == {task: {"kserve": "ran"}}
    table = (run_dir / "results.md").read_text()
    assert "## Peers" in table and f"| {task} | {workload} | kserve |" in table
