"""bf16 at load on real (tiny, random-weight) runtimes: the auto check, the pre-cast weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.tasks import get_task
from services.common.torch_shared import PrecisionChoice, cpu_kind
from tests.fixtures import load_runtime, tiny_bench_version

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("task", ["qa", "vqa"])
def test_pre_cast_bf16_weights_answer_exactly_as_autocast(tmp_path: Path, task: str) -> None:
    import torch

    if not cpu_kind().native_bf16:
        pytest.skip(f"no native bf16 on {cpu_kind().kind}: bf16 is never chosen here")
    version_dir = tiny_bench_version(tmp_path, task)
    # the reference is torch's autocast, not OpenVINO (auto serves fp32 there)
    fp32 = load_runtime(task, version_dir, bf16="off", backend="torch")
    assert not fp32.precision.bf16 and "off" in fp32.precision.reason
    items = fp32.agreement_inputs(24)
    fp32.precision = PrecisionChoice(True, "autocast over fp32 weights")
    reference = fp32.predict(items)
    fp32.unload()

    auto = load_runtime(task, version_dir, bf16="auto", bf16_check_inputs=24)
    try:
        assert auto.precision.agreement is not None  # the check ran
        if auto.precision.bf16:
            linear = [m for m in auto.shared.model.modules() if isinstance(m, torch.nn.Linear)]
            assert any(m.weight.dtype == torch.bfloat16 for m in linear)
            assert auto.predict(items) == reference  # same numbers, answers and confidences
        else:
            assert auto.precision.agreement < 0.99 and "fp32" in auto.precision.reason
    finally:
        auto.unload()


def test_style_auto_check_compares_images_and_refuses_beyond_one_percent(tmp_path: Path) -> None:
    if not cpu_kind().native_bf16:
        pytest.skip(f"no native bf16 on {cpu_kind().kind}: the style check never runs here")
    runtime = load_runtime("style", tiny_bench_version(tmp_path, "style"), bf16="auto", bf16_check_inputs=40)
    try:
        share = runtime.precision.agreement
        assert share is not None  # the image check ran
        assert runtime.precision.bf16 == (share >= 0.99)
        if not runtime.precision.bf16:
            assert "changed" in runtime.precision.reason
    finally:
        runtime.unload()


def test_reloading_a_checked_version_reuses_its_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback reloads a version the service dropped: its bf16 check already ran in this process,
    so the reload serves the same precision without checking a few hundred inputs again."""
    version_dir = tiny_bench_version(tmp_path, "qa")
    cls = get_task("qa").runtime_class()
    checks: list[int] = []
    original = cls.agreement_inputs
    monkeypatch.setattr(cls, "agreement_inputs", lambda self, n: checks.append(n) or original(self, n))

    decisions = []
    for _ in range(2):
        runtime = load_runtime("qa", version_dir, bf16="auto", bf16_check_inputs=24)
        decisions.append(runtime.precision)
        runtime.unload()  # the shared model is dropped: the second load reads the weights again
    first, second = decisions
    assert second.bf16 == first.bf16 and second.agreement == first.agreement
    if cpu_kind().native_bf16:
        assert checks == [24] and "remembered" in second.reason and "remembered" not in first.reason
    else:
        assert checks == [] and "no native bf16" in second.reason


@pytest.mark.parametrize("task", ["qa", "style"])
def test_every_runtime_logs_one_precision_line_with_its_reason(tmp_path: Path, task: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Torch runtimes and the Keras style runtime write the same ``precision of <Runtime>`` record."""
    caplog.set_level("INFO", logger="loopline.precision")
    runtime = load_runtime(task, tiny_bench_version(tmp_path, task), bf16="off")
    try:
        records = [r for r in caplog.records if r.name == "loopline.precision" and "precision of" in r.getMessage()]
        assert len(records) == 1, [r.getMessage() for r in records]
        record = records[0]
        assert record.getMessage() == f"precision of {type(runtime).__name__}: {runtime.precision.reason}"
        assert record.bf16 is False and record.cpu == cpu_kind().kind and hasattr(record, "agreement")
    finally:
        runtime.unload()
