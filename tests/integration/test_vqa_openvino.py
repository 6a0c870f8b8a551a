"""LOOPLINE_VQA_BACKEND on a real (tiny, random-weight) BLIP version: OpenVINO f32 answers exactly as
torch fp32's ``generate`` (its greedy loop re-implemented over the three converted networks), the
confidences too; backend=auto (the default) takes OpenVINO f32 exactly when torch would serve fp32;
clear errors for what cannot work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.common.tasks import task_settings
from services.common.torch_shared import cpu_kind
from tests.fixtures import load_runtime, tiny_bench_version

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vqa_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bench_version(tmp_path_factory.mktemp("ovreg"), "vqa")


def _load(version_dir: Path, **settings: object):  # noqa: ANN202
    return load_runtime("vqa", version_dir, **settings)


def test_openvino_f32_answers_exactly_as_torch_generate(vqa_version: Path) -> None:
    torch_rt = _load(vqa_version, bf16="off", backend="torch")
    assert torch_rt.backend is None
    items = torch_rt.agreement_inputs(40)
    reference = [a for lo in range(0, 40, 8) for a in torch_rt.predict(items[lo:lo + 8])]
    ids_torch, steps_torch = torch_rt._generate(items[:8])
    torch_rt.unload()

    ov_rt = _load(vqa_version, bf16="off", backend="openvino")
    try:
        assert ov_rt.backend is not None and ov_rt.backend.precision == "fp32"
        assert ov_rt.precision.reason.startswith("OpenVINO fp32") and not ov_rt.precision.bf16
        engine, calls = ov_rt.backend, []

        class Counting:
            precision = engine.precision

            def generate(self, *args: object) -> object:
                calls.append(args[0].shape)
                return engine.generate(*args)

        ov_rt.backend = Counting()
        got = [a for lo in range(0, 40, 8) for a in ov_rt.predict(items[lo:lo + 8])]
        assert calls and calls[0][0] == 8, "predict did not run on the OpenVINO backend"
        ov_rt.backend = engine
        ids_ov, steps_ov = ov_rt._generate(items[:8])
    finally:
        ov_rt.unload()
    assert [g["answer"] for g in got] == [r["answer"] for r in reference]
    for g, r in zip(got, reference, strict=True):
        assert g["confidence"] == pytest.approx(r["confidence"], abs=1e-4)
    # token for token, step for step (an answer that ended is padded as generate pads it)
    assert np.array_equal(ids_ov, ids_torch) and len(steps_ov) == len(steps_torch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(steps_ov, steps_torch, strict=True)) < 1e-3
    assert ov_rt.backend is None  # unload drops the compiled networks


def test_auto_backend_serves_openvino_f32_only_where_torch_would_serve_fp32(vqa_version: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common import openvino_backend

    assert task_settings("vqa").backend == "auto"  # the default
    fp32 = _load(vqa_version, bf16="off")
    try:
        assert fp32.backend is not None and fp32.backend.precision == "fp32"
        assert "bf16 off by setting" in fp32.precision.reason
        answers = fp32.predict(fp32.agreement_inputs(3))
        assert len(answers) == 3 and all(0.0 <= a["confidence"] <= 1.0 for a in answers)
    finally:
        fp32.unload()

    on = _load(vqa_version, bf16="on")
    try:
        if cpu_kind().native_bf16:  # torch bf16 is faster than OpenVINO f32: torch stays
            assert on.backend is None and on.precision.bf16
        else:
            assert on.backend is not None and not on.precision.bf16
    finally:
        on.unload()

    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    plain = _load(vqa_version, bf16="off")  # OpenVINO not installed: torch fp32, no error
    try:
        assert plain.backend is None and plain.precision.reason == "bf16 off by setting"
        assert len(plain.predict(plain.agreement_inputs(2))) == 2
    finally:
        plain.unload()


def test_openvino_backend_errors_say_what_to_do(vqa_version: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common import openvino_backend

    with pytest.raises(ValueError, match="cannot be combined with LOOPLINE_VQA_QUANTIZE"):
        _load(vqa_version, backend="openvino", quantize="int8")
    monkeypatch.setattr(openvino_backend, "available", lambda: False)
    with pytest.raises(ValueError, match=r"LOOPLINE_VQA_BACKEND=openvino needs OpenVINO: pip install"):
        _load(vqa_version, backend="openvino")


def test_a_decoder_config_the_greedy_loop_does_not_apply_keeps_torch(vqa_version: Path) -> None:
    """A checkpoint whose decoder generation config asks for a logits processor (here a repetition
    penalty) would decode differently in the plain greedy loop: auto keeps torch, openvino refuses."""
    from services.vqa.runtime import greedy_loop_differs

    plain = _load(vqa_version, bf16="off", backend="torch")
    try:
        assert greedy_loop_differs(plain.shared.model) is None
        plain.shared.model.text_decoder.generation_config.repetition_penalty = 1.3
        assert "repetition_penalty" in greedy_loop_differs(plain.shared.model)
        auto = _load(vqa_version, bf16="off")  # the same shared base, its config changed
        try:
            assert auto.backend is None and not auto.precision.bf16
        finally:
            auto.unload()
        with pytest.raises(ValueError, match="repetition_penalty, which the OpenVINO greedy loop does not apply"):
            _load(vqa_version, bf16="off", backend="openvino")
        assert plain.shared.refs == 1  # the refused load released what it took
    finally:
        plain.shared.model.text_decoder.generation_config.repetition_penalty = 1.0
        plain.unload()


def test_auto_keeps_torch_when_the_conversion_fails(vqa_version: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """``auto`` must never lose a version torch can serve; ``openvino``, asked for, says why it failed."""
    from services.vqa import runtime as vqa_runtime

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("cannot trace this network")

    monkeypatch.setattr(vqa_runtime, "convert_blip", broken)
    auto = _load(vqa_version, bf16="off")
    try:
        assert auto.backend is None and auto.precision.reason == "bf16 off by setting"
        assert "stays on torch fp32: OpenVINO could not convert this version (RuntimeError: cannot trace" in caplog.text
        assert len(auto.predict(auto.agreement_inputs(2))) == 2
        with pytest.raises(RuntimeError, match="cannot trace"):
            _load(vqa_version, bf16="off", backend="openvino")
        assert auto.shared.refs == 1
    finally:
        auto.unload()
