"""One peer cell of the bench, end to end: KServe's model server on the tiny QA model.

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


def test_kserve_peer_cell_answers_like_loopline(tmp_path: Path) -> None:
    from harness.bench.models import ModelSizes
    from harness.bench.runner import BenchConfig, BenchRun

    config = BenchConfig(out_dir=tmp_path / "results", cache_dir=tmp_path / "cache", sizes=ModelSizes.tiny(),
                         tasks=("qa",), concurrency=(1, 2), cell_seconds=0.5, cell_max_requests=6,
                         requests_per_client=1, qa_tokens=(150,), gateway=False, naive=False, efficiency=False,
                         accuracy=False, anchors=False, overload=False, label="peers",
                         # torch fp32 on both sides: the same decoder must then give the same answer
                         service_env={"LOOPLINE_QA_BF16": "off", "LOOPLINE_QA_BACKEND": "torch"},
                         peers=("kserve",), peer_env_dir=REPO / "bench" / "results" / "cache", peer_env_overlay=True)
    results = BenchRun(config, progress=lambda msg: None).run()

    assert results["peers_status"] == {"kserve": "ran"}, results["notes"]
    cells = {(c["variant"], c["concurrency"]): c for c in results["cells"]}
    for c in (1, 2):
        cell = cells[("peer:kserve", c)]
        assert cell["requests"] >= c and cell["errors"] == 0, cell
        assert 0 < cell["p50_ms"] <= cell["p95_ms"]
        assert cell["peak_rss_mb"]["peer:kserve"] > 50
    opened = [r for r in results["open_loop"] if r.get("variant") == "peer:kserve"]
    assert opened and opened[0]["requests"] > 0
    answers = results["peer_answers"]["150-token context"]
    assert answers["kserve"]["answer"], answers
    assert answers["kserve"]["same_as_loopline"], answers
    run_dir = next((tmp_path / "results").glob("*-peers"))
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["peers_status"] == {"kserve": "ran"}
    table = (run_dir / "results.md").read_text()
    assert "## Peers" in table and "| 150-token context | kserve |" in table
