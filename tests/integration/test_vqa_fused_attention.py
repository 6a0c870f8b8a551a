"""The VQA runtime's fused vision attention (``fuse_vision_attention``): same numbers as transformers'
eager BLIP attention, on a real (tiny, random-weight) BLIP version."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.tasks import get_task, task_settings

pytestmark = pytest.mark.integration


def test_fused_vision_attention_matches_eager(tmp_path: Path) -> None:
    import torch
    from transformers import BlipForQuestionAnswering
    from transformers.models.blip.modeling_blip import BlipAttention

    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry
    from services.vqa.runtime import fuse_vision_attention

    ensure_registry(tmp_path, ModelSizes.tiny(), ("vqa",))
    version_dir = tmp_path / MODEL_OF_TASK["vqa"] / "1"
    eager = BlipForQuestionAnswering.from_pretrained(version_dir).eval()
    runtime = get_task("vqa").runtime_class()(task_settings("vqa", warmup=False, num_threads=1, bf16="off",
                                                            backend="torch"), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
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
