"""Scores: SQuAD exact match and token F1, VQA accuracy (normalised exact match)."""

from __future__ import annotations

import collections
import re
import string
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 6) if values else 0.0


def qa_scores(predictions: list[str], truths: list[str]) -> dict[str, Any]:
    """Means, plus per-row values under ``rows`` (the gate pairs them; they are not stored)."""
    em = [exact_match(p, t) for p, t in zip(predictions, truths, strict=True)]
    f1 = [f1_score(p, t) for p, t in zip(predictions, truths, strict=True)]
    return {"exact_match": mean(em), "f1": mean(f1), "count": len(truths), "rows": {"exact_match": em, "f1": f1}}


def vqa_scores(predictions: list[str], truths: list[str]) -> dict[str, Any]:
    acc = [exact_match(p, t) for p, t in zip(predictions, truths, strict=True)]
    return {"accuracy": mean(acc), "count": len(truths), "rows": {"accuracy": acc}}


def public(scores: dict[str, Any] | None) -> dict[str, Any] | None:
    """Scores without the per-row values (what manifests and job records keep)."""
    if scores is None:
        return None
    return {k: (public(v) if isinstance(v, dict) and k != "rows" else v) for k, v in scores.items() if k != "rows"}
