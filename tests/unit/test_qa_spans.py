"""QA windowing and span choice with the real tokenizer and a rigged model head."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from services.common.tasks import task_settings
from services.common.tiny_tokenizer import build_bert_tokenizer
from services.common.torch_shared import SharedModel
from services.qa.runtime import QaRuntime, best_span

pytestmark = pytest.mark.unit


class PointAtToken:
    """Start/end logits peak on every occurrence of one token id (a stand-in QA head)."""

    def __init__(self, start_id: int, end_id: int) -> None:
        self.start_id, self.end_id = start_id, end_id
        self.calls: list[tuple[int, int]] = []
        self.config = SimpleNamespace(max_position_embeddings=64)

    def __call__(self, input_ids: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        self.calls.append(tuple(input_ids.shape))
        start = (input_ids == self.start_id).float() * 10.0
        end = (input_ids == self.end_id).float() * 10.0
        return SimpleNamespace(start_logits=start, end_logits=end)


def _runtime(model: PointAtToken) -> QaRuntime:
    tok = build_bert_tokenizer(model_max_length=64)
    rt = QaRuntime(task_settings("qa", doc_stride=16), Path("."))
    rt.shared = SharedModel("fake", model, tok)
    rt.tokenizer = tok
    rt.max_len, rt.stride, rt.max_question_tokens = 64, 16, 32
    return rt


def test_answer_past_the_first_window_is_found_with_char_offsets() -> None:
    tok = build_bert_tokenizer()
    paris = tok.convert_tokens_to_ids("paris")
    model = PointAtToken(paris, paris)
    rt = _runtime(model)
    filler = "the cat is on a table and the dog is red. " * 12
    context = filler + "its capital city is Paris. " + filler
    [result] = rt.predict([("what is the capital?", context)])
    assert result["answer"] == "Paris"
    assert context[result["start"]:result["end"]] == "Paris"
    assert result["start"] == context.index("Paris")
    assert len(model.calls) == 1 and model.calls[0][0] > 3, "the long context was split into several windows"
    assert model.calls[0][1] <= 64


def test_span_never_inside_the_question_and_padding_is_to_the_longest() -> None:
    tok = build_bert_tokenizer()
    red = tok.convert_tokens_to_ids("red")
    model = PointAtToken(red, red)
    rt = _runtime(model)
    out = rt.predict([("is it red?", "the chair is red."), ("red?", "a blue table")])
    assert out[0]["answer"] == "red" and out[0]["start"] == len("the chair is ")
    assert out[1]["answer"] != "red", "'red' only occurs in the question, which is never an answer"
    assert model.calls[0][1] < 20, "windows are padded to the longest in the batch, not to the maximum"


def test_best_span_respects_order_and_length() -> None:
    s = np.array([0, 5, 0, 0, 9], np.float32)
    e = np.array([0, 0, 7, 8, 0], np.float32)
    mask = np.array([False, True, True, True, True])
    i, j, _, conf = best_span(s, e, mask, max_answer_tokens=2)
    assert (i, j) == (1, 2) and 0 < conf <= 1
    i, j, _, _ = best_span(s, e, mask, max_answer_tokens=5)
    assert (i, j) == (1, 3)
    assert best_span(s, e, np.zeros(5, bool), 5) is None


@pytest.mark.parametrize(("start", "end", "expected"), [
    (20, 21, "Quimbar"),            # one word piece of a made-up name: the whole name
    (22, 25, "Quimbar"),            # pieces inside the word
    (20, 27, "Quimbar"),            # already whole
    (35, 38, "2,400,000"),          # a number with separators is one word
    (53, 56, "Jean-Luc"),           # hyphenated
    (20, 31, "Quimbar. About"),     # several words stay several words
])
def test_spans_are_widened_to_whole_words(start: int, end: int, expected: str) -> None:
    from services.qa.runtime import snap_to_words

    text = "Its capital city is Quimbar. About 2,400,000 people. Jean-Luc's hat."
    s, e = snap_to_words(text, start, end)
    assert text[s:e] == expected


def test_a_word_piece_answer_is_returned_whole_through_predict() -> None:
    tok = build_bert_tokenizer()
    piece = tok.convert_tokens_to_ids("##u")  # "Quimbar" is spelled q ##u ##i ##m ##b ##a ##r
    model = PointAtToken(piece, piece)
    rt = _runtime(model)
    context = "Zorbland is a country in Europe. Its capital city is Quimbar."
    [result] = rt.predict([("What is the capital of Zorbland?", context)])
    assert result["answer"] == "Quimbar"
    assert context[result["start"]:result["end"]] == "Quimbar"
