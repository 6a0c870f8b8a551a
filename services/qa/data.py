"""Extractive QA training rows: ``{"id", "question", "context", "answer", "answer_start", "source"}``,
from a SQuAD JSON dataset or from corrected answers found in the request's context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.datasets import DataAdapter, Dataset
from services.common.errors import Invalid

from .schemas import FAMILY_NAME


def locate_answer(context: str, text: str, hint: int | None = None) -> dict[str, Any] | None:
    """``{"answer", "answer_start"}`` with the text as it appears in the context, or None."""
    text = text.strip()
    if not text:
        return None
    if hint is not None and context[hint:hint + len(text)] == text:
        return {"answer": text, "answer_start": hint}
    start = context.find(text)
    if start < 0:
        start = context.lower().find(text.lower())
    if start < 0:
        return None
    return {"answer": context[start:start + len(text)], "answer_start": start}


class QaData(DataAdapter):
    task = FAMILY_NAME

    def dataset(self, data_dir: Path, path: Path, relative: str) -> Dataset:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise Invalid(f"{relative} is not JSON: {exc}") from None
        out = Dataset(self.task)
        for article in doc.get("data", []):
            for paragraph in article.get("paragraphs", []):
                context = paragraph.get("context", "")
                for qa in paragraph.get("qas", []):
                    where = f"{relative}#{qa.get('id')}"
                    answers = qa.get("answers") or []
                    if not answers:
                        out.skipped.append({"source": where, "reason": "no answer (SQuAD 2 impossible)"})
                        continue
                    row = locate_answer(context, answers[0]["text"], answers[0].get("answer_start"))
                    if row is None:
                        out.skipped.append({"source": where, "reason": "answer not found in context"})
                        continue
                    out.rows.append({"id": str(qa.get("id")), "question": qa["question"], "context": context, **row,
                                     "source": where})
        return out

    def feedback_row(self, inputs: dict[str, Any], correction: str, feedback_id: str,
                     data_dir: Path) -> dict[str, Any] | str:
        context, question = inputs.get("context"), inputs.get("question")
        if not context or not question:
            return "request has no stored question/context"
        located = locate_answer(context, correction)
        if located is None:
            return "correction not found in the request's context"
        return {"id": feedback_id, "question": question, "context": context, **located}
