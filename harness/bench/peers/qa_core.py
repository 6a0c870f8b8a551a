"""The QA model as every peer serves it: the same windows, span rule and word snapping as
Loopline's runtime (services/qa/runtime.py), in torch fp32, with no Loopline import.

The peers' environments have torch, transformers and numpy but not Loopline's kernel, so
``best_span`` and ``snap_to_words`` are copied here (tests/integration/test_bench_peers.py
checks the copies still agree with the originals): a peer that answers differently from
Loopline then does so because of its serving path, not because of a different decoder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

try:  # inside a peer's environment (PYTHONPATH is this folder)
    from batch_log import logged_batch
except ImportError:  # imported from the project (the tests)
    from .batch_log import logged_batch

MAX_SEQ_LEN, DOC_STRIDE, MAX_ANSWER_TOKENS = 384, 128, 30
WORD = re.compile(r"[^\W_]+(?:[-.,][^\W_]+)*")


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


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` widened to whole words."""
    for match in WORD.finditer(text, max(0, start - 64)):
        if match.start() >= end:
            break
        if match.end() > start:
            start, end = min(start, match.start()), max(end, match.end())
    return start, end


class QaModel:
    """Extractive QA over overlapping windows, batched: ``predict([(question, context), ...])``."""

    def __init__(self, model_dir: str | Path, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        threads = threads or int(os.environ.get("PEER_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model_max = getattr(self.model.config, "max_position_embeddings", 512)
        self.max_len = min(MAX_SEQ_LEN, model_max, self.tokenizer.model_max_length)
        self.stride = min(DOC_STRIDE, self.max_len // 4)
        self.predict([("what is it?", "it is a warm-up sentence.")])

    def predict(self, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The answers of one batch; logs its size and time (batch_log.py) for the bench's batch figures."""
        return logged_batch(len(batch), lambda: self._predict(batch))

    def _predict(self, batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
        questions = [q for q, _ in batch]
        contexts = [c for _, c in batch]
        enc = self.tokenizer(questions, contexts, truncation="only_second", max_length=self.max_len,
                             stride=self.stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                             padding="longest", return_tensors="pt")
        sample_of = enc.pop("overflow_to_sample_mapping").tolist()
        offsets = enc.pop("offset_mapping").numpy()
        seq_ids = [enc.sequence_ids(w) for w in range(len(sample_of))]
        inputs = {k: v for k, v in enc.items() if k in self.tokenizer.model_input_names}
        with self.torch.inference_mode():
            out = self.model(**inputs)
        starts, ends = out.start_logits.float().numpy(), out.end_logits.float().numpy()
        best: list[tuple[float, dict[str, Any]] | None] = [None] * len(batch)
        for w, sample in enumerate(sample_of):
            mask = np.array([sid == 1 for sid in seq_ids[w]])
            span = best_span(starts[w], ends[w], mask, MAX_ANSWER_TOKENS)
            if span is None:
                continue
            i, j, score, conf = span
            a, b = snap_to_words(contexts[sample], int(offsets[w][i][0]), int(offsets[w][j][1]))
            if best[sample] is None or score > best[sample][0]:  # type: ignore[index]
                best[sample] = (score, {"answer": contexts[sample][a:b], "confidence": round(conf, 6),
                                        "start": a, "end": b})
        return [b[1] if b else {"answer": "", "confidence": 0.0, "start": 0, "end": 0} for b in best]
