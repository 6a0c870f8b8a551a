"""Visual question answering runtime: BLIP (``BlipForQuestionAnswering``), LoRA adapters via peft.

Confidence = exp(mean over the generated answer tokens, up to and including the end
token, of log p(token)), i.e. the geometric mean of the per-token probabilities of the
greedy answer. It lies in [0, 1] and does not shrink just because an answer is long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.errors import Invalid
from services.common.images import b64_bytes, decode_image, read_image_path
from services.common.runtime import ModelRuntime
from services.common.serving import create_serving_app
from services.common.settings import ImageInputSettings, QuestionSettings, ServingSettings, TorchSettings
from services.common.torch_shared import TorchRuntimeMixin

from .schemas import DEFAULT_PORT, FAMILY_NAME, VqaRequest

log = logging.getLogger("loopline.vqa")


class VqaSettings(TorchSettings, QuestionSettings, ImageInputSettings, ServingSettings):
    """The VQA service (``LOOPLINE_VQA_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_VQA_", extra="ignore")

    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="port this service listens on")
    max_new_tokens: int = Field(10, ge=1, le=64, description="longest generated answer (tokens)")
    max_wait_ms: float = Field(100.0, ge=0, le=10_000, description="longest a request waits for batch-mates "
                               "still being prepared (image decode; a lone request never waits)")


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


def blip_parts(model: Any) -> tuple[Any, Any, Any]:
    """BLIP VQA's three networks as torch modules with plain tensor inputs and outputs, what
    ``BlipForQuestionAnswering.generate`` runs, with the answer decoder's key/value cache made explicit:

    - the vision encoder: pixels -> image embeddings;
    - the question encoder: question ids and mask, image embeddings -> the decoder's cross-attention
      keys and values of the question, ``[layers, 2, batch, heads, question tokens, head width]``
      (computed once per answer instead of once per step);
    - one answer decoder step: the newest answer token ``[batch, 1]``, the cross-attention keys and
      values, and the self-attention keys and values of the tokens before it (``past``,
      ``[layers, 2, batch, heads, tokens so far, head width]``, zero tokens at the first step) ->
      the next-token logits and ``past`` with the new token appended.

    Same arithmetic as ``text_decoder``'s cached forward in ``generate`` (eval mode: no dropout; the
    cross-attention attends to every question position, padding included, as ``generate`` does); a
    step computes one token and the LM head on one position, where recomputing the whole prefix each
    step cost 9 % of a batch of 8 answers (docs/performance.md)."""
    import torch
    import torch.nn.functional as F

    text = model.text_decoder
    layers = text.bert.encoder.layer
    heads = text.config.num_attention_heads
    width = text.config.hidden_size // heads

    def split(x: Any) -> Any:  # [batch, tokens, hidden] -> [batch, heads, tokens, head width]
        return x.view(x.shape[0], x.shape[1], heads, width).transpose(1, 2)

    def merge(x: Any) -> Any:  # the inverse
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], heads * width)

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return self.model.vision_model(pixel_values=pixel_values)[0]

    class Question(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, image_embeds: Any) -> Any:
            image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
            questions = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                                                return_dict=False)[0]
            return torch.stack([torch.stack([split(layer.crossattention.self.key(questions)),
                                             split(layer.crossattention.self.value(questions))])
                                for layer in layers])

    class DecoderStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, cross_kv: Any, past: Any) -> tuple[Any, Any]:
            embeddings = text.bert.embeddings
            position = embeddings.position_embeddings.weight[past.shape[4]]  # tokens so far
            hidden = embeddings.LayerNorm(embeddings.word_embeddings(input_ids) + position)
            present = []
            for i, layer in enumerate(layers):
                own = layer.attention.self
                keys = torch.cat([past[i, 0], split(own.key(hidden))], dim=2)
                values = torch.cat([past[i, 1], split(own.value(hidden))], dim=2)
                present.append(torch.stack([keys, values]))
                # the newest token attends to every earlier one and itself: the causal mask is all ones here
                context = F.scaled_dot_product_attention(split(own.query(hidden)), keys, values)
                attended = layer.attention.output(merge(context), hidden)
                cross = layer.crossattention.self
                context = F.scaled_dot_product_attention(split(cross.query(attended)), cross_kv[i, 0], cross_kv[i, 1])
                attended = layer.crossattention.output(merge(context), attended)
                hidden = layer.output(layer.intermediate(attended), attended)
            return text.cls(hidden)[:, -1, :], torch.stack(present)

    return Vision().eval(), Question().eval(), DecoderStep().eval()


def empty_past(cross_kv: np.ndarray) -> np.ndarray:
    """The decoder's self-attention cache before the first answer token: no tokens yet."""
    layers, two, rows, heads, _, width = cross_kv.shape
    return np.zeros((layers, two, rows, heads, 0, width), dtype=np.float32)


def greedy_generate(vision: Any, question: Any, decoder: Any, pixels: np.ndarray, input_ids: np.ndarray,
                    attention_mask: np.ndarray, max_new_tokens: int, bos: int, eos: int, pad: int
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Greedy decoding as ``BlipForQuestionAnswering.generate(do_sample=False, num_beams=1)`` does it,
    on three engines that take and return numpy arrays (``blip_parts`` compiled elsewhere): the
    generated ids (an answer that ended is padded) and each step's logits."""
    image = vision({"pixel_values": pixels})[0]
    cross = question({"input_ids": input_ids, "attention_mask": attention_mask, "image_embeds": image})[0]
    rows = pixels.shape[0]
    token = np.full((rows, 1), bos, dtype=np.int64)
    past = empty_past(cross)
    done = np.zeros(rows, dtype=bool)
    generated: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for _ in range(max_new_tokens):
        logits, past = decoder({"input_ids": token, "cross_kv": cross, "past": past})
        logits = np.asarray(logits, dtype=np.float32)
        scores.append(logits)
        chosen = np.where(done, pad, logits.argmax(-1)).astype(np.int64)
        generated.append(chosen)
        token = chosen[:, None]
        done |= chosen == eos
        if done.all():
            break
    return np.stack(generated, axis=1), scores  # max_new_tokens >= 1 (the setting's bound)


class CompiledBlip:
    """BLIP's three networks compiled by a runtime (OpenVINO in the service; ONNX Runtime too in the
    bench's anchors), decoded greedily (``greedy_generate``). Each part takes ``{name: array}``
    with the names in ``INPUTS`` and returns a list of arrays (``OUTPUTS``)."""

    INPUTS = (("pixel_values",), ("input_ids", "attention_mask", "image_embeds"), ("input_ids", "cross_kv", "past"))
    OUTPUTS = (("image_embeds",), ("cross_kv",), ("logits", "present"))

    def __init__(self, parts: list[Any], precision: str) -> None:
        self.parts = parts
        self.precision = precision

    def generate(self, pixels: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray, max_new_tokens: int,
                 bos: int, eos: int, pad: int) -> tuple[np.ndarray, list[np.ndarray]]:
        return greedy_generate(*self.parts, pixels, input_ids, attention_mask, max_new_tokens, bos, eos, pad)


def greedy_loop_differs(model: Any) -> str | None:
    """Why ``greedy_generate`` would not give ``generate``'s answers for ``model``, or None: a
    checkpoint whose decoder generation config asks for a logits processor (repetition penalty,
    n-gram blocking, a minimum length, banned or forced tokens) that the plain greedy loop does not
    apply. ``BlipForQuestionAnswering.generate`` decodes with ``text_decoder``'s config."""
    config = getattr(getattr(model, "text_decoder", None), "generation_config", None) or model.generation_config
    asks = {"repetition_penalty": getattr(config, "repetition_penalty", None) not in (None, 1.0),
            "encoder_repetition_penalty": getattr(config, "encoder_repetition_penalty", None) not in (None, 1.0)}
    for name in ("no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "min_length", "min_new_tokens",
                 "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "forced_bos_token_id",
                 "forced_eos_token_id", "sequence_bias", "exponential_decay_length_penalty"):
        asks[name] = bool(getattr(config, name, None))
    named = sorted(name for name, on in asks.items() if on)
    return f"its generation config sets {', '.join(named)}, which the OpenVINO greedy loop does not apply" \
        if named else None


def blip_examples(parts: tuple[Any, Any, Any], tokenizer: Any, image_side: int) -> tuple[tuple[Any, ...], ...]:
    """Example inputs of ``blip_parts``' three networks (batch 2, two answer tokens so far), what
    tracing exporters need."""
    import torch

    vision, question, decoder = parts
    pixels = torch.zeros(2, 3, image_side, image_side)
    text = tokenizer(["what is it?", "what colour is the big one?"], padding="longest", return_tensors="pt")
    answer = torch.full((2, 1), 1, dtype=torch.long)
    with torch.no_grad():
        image = vision(pixels)
        cross = question(text["input_ids"], text["attention_mask"], image)
        _, past = decoder(answer, cross, torch.from_numpy(empty_past(cross.numpy())))
        _, past = decoder(answer, cross, past)
    return (pixels,), (text["input_ids"], text["attention_mask"], image), (answer, cross, past)


def convert_blip(model: Any, tokenizer: Any, image_side: int, threads: int,
                 cache: Callable[[str], Path | None] = lambda network: None) -> Any:
    """``model`` (its adapter active, if any) in OpenVINO; returns ``compile(bf16)`` -> ``CompiledBlip``.
    ``cache(network)``: where ``convert_cached`` keeps each of the three conversions (None: nowhere)."""
    from services.common import openvino_backend as ovb

    parts = blip_parts(model)
    converted = [ovb.convert_cached(part, example, cache(network))
                 for part, example, network in zip(parts, blip_examples(parts, tokenizer, image_side),
                                                   ("vision", "question", "decoder"), strict=True)]

    def compile_for(bf16: bool | None) -> CompiledBlip:
        parts = [ovb.compile_encoder(m, names, threads, bf16)
                 for m, names in zip(converted, CompiledBlip.INPUTS, strict=True)]
        return CompiledBlip(parts, parts[0].precision)

    return compile_for


def answer_confidence(step_logprobs: list[list[float]]) -> list[float]:
    """Geometric-mean token probability per answer (see module docstring)."""
    import math

    return [round(math.exp(sum(lps) / len(lps)), 6) if lps else 0.0 for lps in step_logprobs]


class VqaRuntime(TorchRuntimeMixin, ModelRuntime):
    task = FAMILY_NAME
    request_model = VqaRequest
    settings_class = VqaSettings
    settings: VqaSettings

    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        self.check_backend_setting()
        shared = self._load_shared(version_dir, manifest, _load_base)
        fuse_vision_attention(shared.model)
        self.processor = shared.extra
        self.image_side = int(shared.model.config.vision_config.image_size)
        self.eos_id = self.processor.tokenizer.sep_token_id
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.choose_backend(self._convert_openvino)

    def openvino_f32_pays(self) -> bool:
        """As for every torch runtime, and only when the greedy loop gives ``generate``'s answers."""
        assert self.shared is not None
        pays = super().openvino_f32_pays()
        differs = greedy_loop_differs(self.shared.model) if pays else None
        if differs is not None:
            log.info("VQA stays on torch: %s", differs)
        return pays and differs is None

    def _convert_openvino(self) -> Any:
        assert self.shared is not None
        differs = greedy_loop_differs(self.shared.model)
        if differs is not None:
            raise ValueError(f"LOOPLINE_VQA_BACKEND=openvino cannot serve this version: {differs}; "
                             "use LOOPLINE_VQA_BACKEND=torch or auto")
        with self.shared.using(self.adapter) as model:
            return convert_blip(model, self.processor.tokenizer, self.image_side, self.settings.num_threads,
                                self.openvino_cache_entry)

    def agreement_inputs(self, count: int) -> list[tuple[Any, str]]:
        """Shapes-world scenes and questions (services/vqa/world/shapes.py), prepared as requests are."""
        from services.vqa.world import shapes

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
        generated, scores = self._generate(batch)
        step_lps: list[list[float]] = [[] for _ in batch]
        done = [False] * len(batch)
        for t, logits in enumerate(scores):
            shifted = logits - logits.max(axis=-1, keepdims=True)
            logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            for b in range(len(batch)):
                if done[b]:
                    continue  # past the end of this answer: padding
                token = int(generated[b, t])
                step_lps[b].append(float(logprobs[b, token]))
                done[b] = token in (self.eos_id, self.pad_id)
        answers = self.processor.tokenizer.batch_decode(generated, skip_special_tokens=True)
        confidences = answer_confidence(step_lps)
        return [{"answer": a.strip(), "confidence": c} for a, c in zip(answers, confidences, strict=True)]

    def _generate(self, batch: list[tuple[Any, str]]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The greedy answer ids of a batch (an ended answer is padded) and each step's logits, on the
        OpenVINO backend when one is loaded, else on torch's ``generate``."""
        import torch

        assert self.shared is not None
        pixels = torch.cat([p for p, _ in batch])
        questions = [q for _, q in batch]
        if self.backend is not None:
            text = self.processor.tokenizer(questions, padding="longest", return_tensors="np")
            return self.backend.generate(pixels.numpy(), text["input_ids"].astype(np.int64),
                                         text["attention_mask"].astype(np.int64), self.settings.max_new_tokens,
                                         self.shared.model.decoder_start_token_id, self.eos_id, self.pad_id)
        text = self.processor.tokenizer(questions, padding="longest", return_tensors="pt")
        with self.shared.using(self.adapter) as model, self.inference():
            out = model.generate(pixel_values=pixels, input_ids=text["input_ids"],
                                 attention_mask=text["attention_mask"], max_new_tokens=self.settings.max_new_tokens,
                                 do_sample=False, num_beams=1, output_scores=True, return_dict_in_generate=True)
        sequences = out.sequences
        generated = sequences[:, -len(out.scores):] if out.scores else sequences[:, :0]
        return generated.numpy(), [step.float().numpy() for step in out.scores]


def create_app() -> FastAPI:
    return create_serving_app(VqaRuntime)
