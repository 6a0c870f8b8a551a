"""The bench's anchors on tiny random-weight models: VQA, QA and style really run in ONNX Runtime and
OpenVINO, give the service's fp32 outputs, and land as result cells of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.tasks import task_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.bench.models import ModelSizes, ensure_registry

    path = tmp_path_factory.mktemp("anchorreg")
    ensure_registry(path, ModelSizes.tiny(), ("vqa", "qa", "style"))
    return path


def _qa_workloads(registry: Path) -> list:
    from transformers import AutoTokenizer

    from harness.bench.models import MODEL_OF_TASK
    from harness.bench.workloads import qa_workloads

    return qa_workloads(AutoTokenizer.from_pretrained(registry / MODEL_OF_TASK["qa"] / "1"), (150,))


def _check_cells(cells: list[dict], task: str, workloads: list) -> None:
    assert {c["variant"] for c in cells} >= {"onnxruntime", "openvino"}
    for cell in cells:
        assert cell["task"] == task and cell["concurrency"] == cell["batch"] in (1, 8)
        assert cell["throughput_rps"] > 0 and 0 < cell["p50_ms"] <= cell["p95_ms"]
        assert cell["agreement_n"] == 24
        if cell["precision"] == "fp32":  # an f32 export of the same weights gives the same answers
            assert cell["agrees_with_fp32"] == 1.0, cell
    for workload in workloads:
        for variant in ("onnxruntime", "openvino"):
            assert {c["batch"] for c in cells if (c["variant"], c["workload"]) == (variant, workload.name)} == {1, 8}


def test_style_anchor_cells(registry: Path) -> None:
    from harness.bench.anchors import missing, style_anchor_cells
    from harness.bench.models import MODEL_OF_TASK
    from harness.bench.workloads import style_workload

    assert missing("style") == [], "make install installs the bench extra"
    workloads = [style_workload(64)]
    cells = style_anchor_cells(registry / MODEL_OF_TASK["style"] / "1", task_settings("style", num_threads=1),
                               workloads, threads=1, seconds=0.1, agreement_inputs=24)
    _check_cells(cells, "style", workloads)


def test_qa_anchor_cells(registry: Path) -> None:
    from harness.bench.anchors import missing, qa_anchor_cells
    from harness.bench.models import MODEL_OF_TASK

    assert missing("qa") == []
    workloads = _qa_workloads(registry)
    cells = qa_anchor_cells(registry / MODEL_OF_TASK["qa"] / "1", task_settings("qa", num_threads=1),
                            workloads, threads=1, seconds=0.1, agreement_inputs=24)
    _check_cells(cells, "qa", workloads)
    assert all(c["windows"] >= c["batch"] for c in cells)


def test_vqa_anchor_cells(registry: Path) -> None:
    from harness.bench.anchors import missing, vqa_anchor_cells
    from harness.bench.models import MODEL_OF_TASK
    from harness.bench.workloads import vqa_workload

    assert missing("vqa") == []
    workloads = [vqa_workload()]
    cells = vqa_anchor_cells(registry / MODEL_OF_TASK["vqa"] / "1", task_settings("vqa", num_threads=1),
                             workloads, threads=1, seconds=0.1, agreement_inputs=24)
    _check_cells(cells, "vqa", workloads)
    assert all(1 <= c["decoder_steps"] <= task_settings("vqa").max_new_tokens for c in cells)


def test_bench_run_reports_anchor_status_per_task(registry: Path, tmp_path: Path) -> None:
    """The runner's anchor step: VQA, QA and style cells in the results, a status per task."""
    from harness.bench.models import ModelSizes
    from harness.bench.runner import BenchConfig, BenchRun
    from harness.bench.workloads import style_workload, vqa_workload

    config = BenchConfig(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", sizes=ModelSizes.tiny(),
                         tasks=("vqa", "qa", "style"), threads=1, cell_seconds=0.1, accuracy_inputs=24)
    run = BenchRun(config, progress=lambda msg: None)
    run.workloads = {"vqa": [vqa_workload()], "qa": _qa_workloads(registry), "style": [style_workload(64)]}
    run.run_anchors(registry)
    assert run.results["anchors_status"] == "vqa ran; qa ran; style ran"
    assert {c["task"] for c in run.results["anchors"]} == {"vqa", "qa", "style"}
