"""bf16 at load on real (tiny, random-weight) runtimes: the auto check, the pre-cast weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.tasks import get_task, task_settings
from services.common.torch_shared import PrecisionChoice, cpu_kind

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("task", ["qa", "vqa"])
def test_pre_cast_bf16_weights_answer_exactly_as_autocast(tmp_path: Path, task: str) -> None:
    import torch

    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry

    if not cpu_kind().native_bf16:
        pytest.skip(f"no native bf16 on {cpu_kind().kind}: bf16 is never chosen here")
    ensure_registry(tmp_path, ModelSizes.tiny(), (task,))
    version_dir = tmp_path / MODEL_OF_TASK[task] / "1"
    cls = get_task(task).runtime_class()

    torch_only = {"backend": "torch"}  # the reference is torch's autocast, not OpenVINO (auto serves fp32 there)
    fp32 = cls(task_settings(task, warmup=False, num_threads=1, bf16="off", **torch_only), Path("."))
    fp32.load(version_dir, fp32.read_manifest(version_dir))
    assert not fp32.precision.bf16 and "off" in fp32.precision.reason
    items = fp32.agreement_inputs(24)
    fp32.precision = PrecisionChoice(True, "autocast over fp32 weights")
    reference = fp32.predict(items)
    fp32.unload()

    auto = cls(task_settings(task, warmup=False, num_threads=1, bf16="auto", bf16_check_inputs=24), Path("."))
    auto.load(version_dir, auto.read_manifest(version_dir))
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
    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry

    if not cpu_kind().native_bf16:
        pytest.skip(f"no native bf16 on {cpu_kind().kind}: the style check never runs here")
    ensure_registry(tmp_path, ModelSizes.tiny(), ("style",))
    version_dir = tmp_path / MODEL_OF_TASK["style"] / "1"
    runtime = get_task("style").runtime_class()(task_settings("style", warmup=False, num_threads=1, bf16="auto",
                                                              bf16_check_inputs=40), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
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
    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry

    ensure_registry(tmp_path, ModelSizes.tiny(), ("qa",))
    version_dir = tmp_path / MODEL_OF_TASK["qa"] / "1"
    cls = get_task("qa").runtime_class()
    checks: list[int] = []
    original = cls.agreement_inputs
    monkeypatch.setattr(cls, "agreement_inputs", lambda self, n: checks.append(n) or original(self, n))

    decisions = []
    for _ in range(2):
        runtime = cls(task_settings("qa", warmup=False, num_threads=1, bf16="auto", bf16_check_inputs=24), Path("."))
        runtime.load(version_dir, runtime.read_manifest(version_dir))
        decisions.append(runtime.precision)
        runtime.unload()  # the shared model is dropped: the second load reads the weights again
    first, second = decisions
    assert second.bf16 == first.bf16 and second.agreement == first.agreement
    if cpu_kind().native_bf16:
        assert checks == [24] and "remembered" in second.reason and "remembered" not in first.reason
    else:
        assert checks == [] and "no native bf16" in second.reason
