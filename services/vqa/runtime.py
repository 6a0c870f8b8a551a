"""Visual question answering runtime: BLIP (``BlipForQuestionAnswering``), LoRA adapters via peft.

Confidence = exp(mean over the generated answer tokens, up to and including the end
token, of log p(token)), i.e. the geometric mean of the per-token probabilities of the
greedy answer. It lies in [0, 1] and does not shrink just because an answer is long.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.errors import Invalid
from services.common.images import b64_bytes, decode_image, read_image_path
from services.common.runtime import ModelRuntime, PredictRequest
from services.common.serving import create_serving_app
from services.common.settings import ImageInputSettings, QuestionSettings, ServingSettings, TorchSettings
from services.common.tasks import TASKS
from services.common.text import Text
from services.common.torch_shared import TorchRuntimeMixin


class VqaSettings(TorchSettings, QuestionSettings, ImageInputSettings, ServingSettings):
    """The VQA service (``LOOPLINE_VQA_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_VQA_", extra="ignore")

    port: int = Field(TASKS["vqa"].default_port, ge=1, le=65535, description="port this service listens on")
    max_new_tokens: int = Field(10, ge=1, le=64, description="longest generated answer (tokens)")
    max_wait_ms: float = Field(100.0, ge=0, le=10_000, description="longest a request waits for batch-mates "
                               "still being prepared (image decode; a lone request never waits)")


class VqaRequest(PredictRequest):
    question: Text = Field(..., min_length=1, description="a question about the image")
    image_b64: str | None = Field(None, description="JPEG/PNG/WebP bytes, base64")
    image_path: str | None = Field(None, description="path relative to the data root")

    @model_validator(mode="after")
    def _one_image(self) -> VqaRequest:
        if (self.image_b64 is None) == (self.image_path is None):
            raise ValueError("send exactly one of image_b64 or image_path")
        return self


def _load_base(path: Path | str) -> tuple[Any, Any]:
    from transformers import BlipForQuestionAnswering, BlipProcessor

    model = BlipForQuestionAnswering.from_pretrained(path).eval()
    return model, BlipProcessor.from_pretrained(path)


def save_from_hub(hub_id: str, out_dir: Path) -> None:
    """``loopline models pull``: a real BLIP VQA checkpoint from the Hugging Face hub, saved as a version."""
    for part in _load_base(hub_id):
        part.save_pretrained(out_dir)


def fuse_vision_attention(model: Any) -> int:
    """Run BLIP's vision self-attention through ``torch.nn.functional.scaled_dot_product_attention``
    (a fused kernel) instead of transformers' eager matmul + softmax + matmul, which materialises a
    577 x 577 score matrix per head and image. Same math: outputs differ from eager by ~1e-6 in fp32;
    the vision encoder got 12-15 % faster at batch 1 and 8 (docs/performance.md). Inference only
    (no attention dropout, no attention maps); returns how many attention modules were switched."""
    import types

    import torch.nn.functional as F
    from transformers.models.blip.modeling_blip import BlipAttention

    def forward(self: Any, hidden_states: Any, **kwargs: Any) -> tuple[Any, None]:
        bsz, tokens, width = hidden_states.size()
        qkv = self.qkv(hidden_states).reshape(bsz, tokens, 3, self.num_heads, width // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.projection(context.permute(0, 2, 1, 3).reshape(bsz, tokens, width)), None

    switched = 0
    for module in model.modules():
        if isinstance(module, BlipAttention) and "forward" not in module.__dict__:
            module.forward = types.MethodType(forward, module)
            switched += 1
    return switched


def answer_confidence(step_logprobs: list[list[float]]) -> list[float]:
    """Geometric-mean token probability per answer (see module docstring)."""
    import math

    return [round(math.exp(sum(lps) / len(lps)), 6) if lps else 0.0 for lps in step_logprobs]


class VqaRuntime(TorchRuntimeMixin, ModelRuntime):
    task = "vqa"
    request_model = VqaRequest
    settings_class = VqaSettings
    settings: VqaSettings

    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        shared = self._load_shared(version_dir, manifest, _load_base)
        fuse_vision_attention(shared.model)
        self.processor = shared.extra
        self.image_side = int(shared.model.config.vision_config.image_size)
        self.eos_id = self.processor.tokenizer.sep_token_id
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.choose_precision()

    def agreement_inputs(self, count: int) -> list[tuple[Any, str]]:
        """Shapes-world scenes and questions (services/world/shapes.py), prepared as requests are."""
        from services.world import shapes

        examples = shapes.examples(seed=1234, count=count)
        return [(self.processor.image_processor(shapes.render(e.scene), return_tensors="pt")["pixel_values"],
                 e.question) for e in examples]

    def prepare(self, request: VqaRequest) -> tuple[Any, str]:
        question = request.question.strip()
        if not question:
            raise Invalid("question is empty")
        if len(question) > self.settings.max_question_chars:
            raise Invalid(f"question is longer than {self.settings.max_question_chars} characters")
        limit = self.settings.max_body_bytes
        raw = (b64_bytes(request.image_b64, limit) if request.image_b64 is not None
               else read_image_path(self.data_dir, request.image_path or "", limit))
        image = decode_image(raw, self.settings.max_image_pixels, limit, draft_side=self.image_side)
        pixels = self.processor.image_processor(image, return_tensors="pt")["pixel_values"]
        return pixels, question

    def warmup(self) -> None:
        from PIL import Image

        img = Image.new("RGB", (self.image_side, self.image_side), "gray")
        pixels = self.processor.image_processor(img, return_tensors="pt")["pixel_values"]
        self.predict([(pixels, "what is this?")])

    def predict(self, batch: list[tuple[Any, str]]) -> list[dict[str, Any]]:
        import torch

        assert self.shared is not None
        pixels = torch.cat([p for p, _ in batch])
        text = self.processor.tokenizer([q for _, q in batch], padding="longest", return_tensors="pt")
        with self.shared.using(self.adapter) as model, self.inference():
            out = model.generate(pixel_values=pixels, input_ids=text["input_ids"],
                                 attention_mask=text["attention_mask"], max_new_tokens=self.settings.max_new_tokens,
                                 do_sample=False, num_beams=1, output_scores=True, return_dict_in_generate=True)
        sequences = out.sequences
        generated = sequences[:, -len(out.scores):] if out.scores else sequences[:, :0]
        step_lps: list[list[float]] = [[] for _ in batch]
        done = [False] * len(batch)
        for t, scores in enumerate(out.scores):
            logprobs = torch.log_softmax(scores.float(), dim=-1)
            for b in range(len(batch)):
                if done[b]:
                    continue  # past the end of this answer: padding
                token = int(generated[b, t])
                step_lps[b].append(float(logprobs[b, token]))
                done[b] = token in (self.eos_id, self.pad_id)
        answers = self.processor.tokenizer.batch_decode(generated, skip_special_tokens=True)
        confidences = answer_confidence(step_lps)
        return [{"answer": a.strip(), "confidence": c} for a, c in zip(answers, confidences, strict=True)]


def create_app() -> FastAPI:
    return create_serving_app(VqaRuntime)
