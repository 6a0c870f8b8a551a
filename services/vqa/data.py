"""VQA training rows: ``{"image_path", "question", "answer", "source"}`` (image paths relative to the
data root), from a CSV dataset (image_path,question,answer) or from corrected answers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from services.common.datasets import DataAdapter, Dataset
from services.common.errors import BadRequest, Invalid, NotFound
from services.common.images import resolve_under

from .schemas import FAMILY_NAME


class VqaData(DataAdapter):
    task = FAMILY_NAME

    def dataset(self, data_dir: Path, path: Path, relative: str) -> Dataset:
        out = Dataset(self.task)
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"image_path", "question", "answer"} - set(reader.fieldnames or [])
            if missing:
                raise Invalid(f"{relative}: missing column(s) {', '.join(sorted(missing))}")
            for line, rec in enumerate(reader, start=2):
                where = f"{relative}:{line}"
                question, answer = (rec.get("question") or "").strip(), (rec.get("answer") or "").strip()
                if not question or not answer:
                    out.skipped.append({"source": where, "reason": "empty question or answer"})
                    continue
                try:
                    resolve_under(data_dir, rec["image_path"])
                except (BadRequest, NotFound) as exc:
                    out.skipped.append({"source": where, "reason": exc.message})
                    continue
                out.rows.append({"image_path": rec["image_path"], "question": question, "answer": answer,
                                 "source": where})
        return out

    def feedback_row(self, inputs: dict[str, Any], correction: str, feedback_id: str,
                     data_dir: Path) -> dict[str, Any] | str:
        path = inputs.get("image_path")
        if not path or not inputs.get("question"):
            return "request has no stored image_path/question"
        try:
            resolve_under(data_dir, path)
        except (BadRequest, NotFound) as exc:
            return exc.message
        return {"image_path": path, "question": inputs["question"], "answer": correction}
