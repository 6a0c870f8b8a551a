"""The VQA runtime's fused vision attention (``fuse_vision_attention``): same numbers as transformers'
eager BLIP attention, on a real (tiny, random-weight) BLIP version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import load_runtime, tiny_bench_version

pytestmark = pytest.mark.integration


def test_fused_vision_attention_matches_eager(tmp_path: Path) -> None:
    import torch
    from transformers import BlipForQuestionAnswering
    from transformers.models.blip.modeling_blip import BlipAttention

    from services.vqa.runtime import fuse_vision_attention

    version_dir = tiny_bench_version(tmp_path, "vqa")
    eager = BlipForQuestionAnswering.from_pretrained(version_dir).eval()
    runtime = load_runtime("vqa", version_dir, bf16="off", backend="torch")
    try:
        fused = runtime.shared.model
        attention = [m for m in fused.modules() if isinstance(m, BlipAttention)]
        assert attention and all("forward" in m.__dict__ for m in attention)  # every vision layer switched
        assert fuse_vision_attention(fused) == 0  # idempotent: a second load of the same base changes nothing
        pixels = torch.randn(3, 3, fused.config.vision_config.image_size, fused.config.vision_config.image_size)
        with torch.inference_mode():
            want = eager.vision_model(pixel_values=pixels)[0]
            got = fused.vision_model(pixel_values=pixels)[0]
        assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
        items = runtime.agreement_inputs(16)
        answers = runtime.predict(items)
        runtime.shared.model = eager  # the same runtime on transformers' eager attention
        try:
            assert runtime.predict(items) == [dict(a, confidence=pytest.approx(a["confidence"], abs=1e-4))
                                              for a in answers]
        finally:
            runtime.shared.model = fused
    finally:
        runtime.unload()
