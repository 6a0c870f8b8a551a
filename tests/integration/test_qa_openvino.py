"""LOOPLINE_QA_BACKEND=openvino on a real (tiny, random-weight) QA version: same answers as torch
fp32 at f32, the bf16 guard under auto, clear errors for what cannot work; backend=auto (the
default) takes OpenVINO f32 exactly when torch would serve fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.tasks import task_settings
from services.common.torch_shared import cpu_kind
from tests.fixtures import load_runtime, tiny_bench_version

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def qa_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bench_version(tmp_path_factory.mktemp("ovreg"), "qa")


def _load(version_dir: Path, **settings: object):  # noqa: ANN202
    return load_runtime("qa", version_dir, **settings)


def test_openvino_f32_answers_exactly_as_torch_fp32(qa_version: Path) -> None:
    torch_rt = _load(qa_version, bf16="off", backend="torch")
    assert torch_rt.backend is None
    items = torch_rt.agreement_inputs(48)
    items.append(("what is the long one?", " ".join(["the long one is a wide blue lake."] * 80)))  # several windows
    reference = torch_rt.predict(items)
    torch_rt.unload()

    ov_rt = _load(qa_version, bf16="off", backend="openvino")
    try:
        assert ov_rt.backend is not None and ov_rt.backend.precision == "fp32"
        assert ov_rt.precision.reason.startswith("OpenVINO fp32") and not ov_rt.precision.bf16
        compiled, calls = ov_rt.backend, []

        def counting(feed: dict) -> list:
            calls.append(feed["input_ids"].shape)
            return compiled(feed)

        ov_rt.backend = counting
        got = ov_rt.predict(items)
        assert calls, "predict did not run on the OpenVINO backend"
    finally:
        ov_rt.unload()
    assert [g["answer"] for g in got] == [r["answer"] for r in reference]
    assert [(g["start"], g["end"]) for g in got] == [(r["start"], r["end"]) for r in reference]
    for g, r in zip(got, reference, strict=True):
        assert g["confidence"] == pytest.approx(r["confidence"], abs=1e-4)
    assert ov_rt.backend is None  # unload drops the compiled model


def test_openvino_auto_keeps_bf16_only_within_the_guard(qa_version: Path) -> None:
    rt = _load(qa_version, bf16="auto", backend="openvino", bf16_check_inputs=24)
    try:
        if not cpu_kind().native_bf16:
            assert rt.backend.precision == "fp32" and "no native bf16" in rt.precision.reason
            return
        assert rt.precision.agreement is not None  # the check ran against torch fp32
        if rt.precision.bf16:
            assert rt.backend.precision == "bf16" and rt.precision.agreement >= 0.99
        else:
            assert rt.backend.precision == "fp32" and rt.precision.agreement < 0.99
        answers = rt.predict(rt.agreement_inputs(8))
        assert len(answers) == 8 and all({"answer", "confidence", "start", "end"} <= set(a) for a in answers)
    finally:
        rt.unload()


def test_openvino_backend_errors_say_what_to_do(qa_version: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common import openvino_backend

    with pytest.raises(ValueError, match="cannot be combined with LOOPLINE_QA_QUANTIZE"):
        _load(qa_version, backend="openvino", quantize="int8")
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'loopline\[openvino\]'"):
        _load(qa_version, backend="openvino")
    with pytest.raises(ValidationError, match="torch"):
        task_settings("qa", backend="tensorrt")


def test_openvino_refuses_a_base_already_cast_to_bf16_by_torch(qa_version: Path) -> None:
    """Two versions over one shared base in one process must not mix backends: OpenVINO would convert
    weights that torch already cast to bf16 and call them its fp32 reference."""
    from services.common.torch_shared import PrecisionChoice

    torch_rt = _load(qa_version, bf16="off", backend="torch")
    try:
        torch_rt.shared.precision = PrecisionChoice(True, "as if torch had chosen bf16 for this base")
        with pytest.raises(ValueError, match="same backend"):
            _load(qa_version, backend="openvino")
        assert torch_rt.shared.refs == 1  # the refused load released the reference it took
    finally:
        torch_rt.shared.precision = PrecisionChoice(False, "restored")
        torch_rt.unload()


def test_auto_backend_serves_openvino_f32_only_where_torch_would_serve_fp32(qa_version: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common import openvino_backend

    assert task_settings("qa").backend == "auto"  # the default
    torch_rt = _load(qa_version, bf16="off", backend="torch")
    items = torch_rt.agreement_inputs(32)
    reference = torch_rt.predict(items)
    torch_rt.unload()

    fp32 = _load(qa_version, bf16="off")  # torch fp32 -> OpenVINO f32, the same answers
    try:
        assert fp32.backend is not None and fp32.backend.precision == "fp32"
        assert fp32.precision.reason.startswith("OpenVINO fp32") and "bf16 off by setting" in fp32.precision.reason
        assert [a["answer"] for a in fp32.predict(items)] == [r["answer"] for r in reference]
    finally:
        fp32.unload()

    on = _load(qa_version, bf16="on")
    try:
        if cpu_kind().native_bf16:  # torch bf16 is faster than OpenVINO f32: torch stays
            assert on.backend is None and on.precision.bf16
        else:  # no native bf16: torch would run fp32
            assert on.backend is not None and not on.precision.bf16
    finally:
        on.unload()

    int8 = _load(qa_version, bf16="off", quantize="int8")  # int8 is a torch option: torch stays
    try:
        assert int8.backend is None and "int8" in int8.precision.reason
    finally:
        int8.unload()

    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    plain = _load(qa_version, bf16="off")  # OpenVINO not installed: torch fp32, no error
    try:
        assert plain.backend is None and plain.precision.reason == "bf16 off by setting"
    finally:
        plain.unload()
