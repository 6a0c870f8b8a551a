"""A seconds-long run of the benchmark harness on tiny models: every stage runs and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_bench_writes_table_json_and_plot(tmp_path: Path) -> None:
    from harness.bench.models import ModelSizes
    from harness.bench.runner import BenchConfig, BenchRun

    config = BenchConfig(out_dir=tmp_path / "results", cache_dir=tmp_path / "cache", sizes=ModelSizes.tiny(),
                         tasks=("qa",), concurrency=(1, 2), naive_concurrency=(1, 2), cell_seconds=0.5,
                         cell_max_requests=6, requests_per_client=1, qa_tokens=(150,),
                         relay_seconds=0.5, label="smoke")
    results = BenchRun(config, progress=lambda msg: None).run()

    run_dir = next((tmp_path / "results").glob("*-smoke"))
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["peak"]["fp32_gflops"] > 0 and stored["peak"]["bf16_gflops"] > 0
    cells = {(c["task"], c["variant"], c["concurrency"]): c for c in stored["cells"]}
    for task in ("qa",):
        for variant in ("naive", "direct"):
            for c in (1, 2):
                cell = cells[(task, variant, c)]
                assert cell["requests"] >= c and cell["errors"] == 0, cell
                assert 0 < cell["p50_ms"] <= cell["p95_ms"] <= cell["p99_ms"]
        assert cells[(task, "direct", 1)]["mean_batch_size"] == 1.0
        # the share of the cell's wall time the model ran: positive, and at most the whole cell
        busy = cells[(task, "direct", 2)]["model_busy"]
        assert busy is not None and 0 < busy <= 1.05, busy
        assert cells[(task, "naive", 1)].get("model_busy") is None
    assert results["efficiency"]["qa"]["flops_per_request"]["150-token context"] > 0
    assert results["efficiency"]["qa"]["component"]["fraction_of_peak"] > 0
    if results["gateway_status"] == "ran":  # the gateway variant runs whenever the gateway is installed
        assert cells[("qa", "gateway", 2)]["errors"] == 0
        assert results["relay"]["status"] == "ran"
    goals = {g["goal"] for g in stored["goals"]}
    assert any("throughput at c=2 >= 2x naive" in g for g in goals)
    table = (run_dir / "results.md").read_text()
    assert "| qa | 150-token context | direct | 2 |" in table
    assert (run_dir / "latency.png").stat().st_size > 10_000
