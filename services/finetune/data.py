"""Training rows from datasets and feedback, the held-out split, and a digest of what was used.

Rows are plain dicts so they can be written to a job directory (the Kubernetes runner
hands them to the training pod as JSON):

* vqa: ``{"image_path", "question", "answer", "source"}`` (image paths relative to the data root)
* qa: ``{"id", "question", "context", "answer", "answer_start", "source"}``
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import BadRequest, Invalid, NotFound
from services.common.images import resolve_under

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


@dataclass
class Dataset:
    task: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    feedback_ids: list[str] = field(default_factory=list)

    def sha256(self) -> str:
        canonical = json.dumps(self.rows, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()


def resolve_dir(root: Path, relative: str) -> Path:
    if not relative or Path(relative).is_absolute():
        raise BadRequest("paths must be relative to the data root")
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        raise BadRequest(f"{relative!r} points outside the data root")
    if not path.is_dir():
        raise NotFound(f"folder {relative!r} does not exist under the data root")
    return path


def load_dataset(task: str, data_dir: Path, relative: str) -> Dataset:
    path = resolve_under(data_dir, relative)
    if task == "vqa":
        return _load_vqa_csv(data_dir, path, relative)
    if task == "qa":
        return _load_squad(path, relative)
    raise BadRequest(f"task {task!r} trains from style_image + content_dir, not a dataset file")


def _load_vqa_csv(data_dir: Path, path: Path, relative: str) -> Dataset:
    out = Dataset("vqa")
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
            out.rows.append({"image_path": rec["image_path"], "question": question, "answer": answer, "source": where})
    return out


def _load_squad(path: Path, relative: str) -> Dataset:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise Invalid(f"{relative} is not JSON: {exc}") from None
    out = Dataset("qa")
    for article in doc.get("data", []):
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context", "")
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                if not answers:
                    out.skipped.append({"source": f"{relative}#{qa.get('id')}", "reason": "no answer (SQuAD 2 impossible)"})
                    continue
                row = locate_answer(context, answers[0]["text"], answers[0].get("answer_start"))
                if row is None:
                    out.skipped.append({"source": f"{relative}#{qa.get('id')}", "reason": "answer not found in context"})
                    continue
                out.rows.append({"id": str(qa.get("id")), "question": qa["question"], "context": context, **row,
                                 "source": f"{relative}#{qa.get('id')}"})
    return out


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


def feedback_dataset(task: str, data_dir: Path, rows: list[dict[str, Any]]) -> Dataset:
    """Feedback corrections (joined with their requests) as training rows; the rest is reported."""
    out = Dataset(task)
    for fb in rows:
        where = f"feedback:{fb['feedback_id']}"
        correction = (fb.get("correction") or "").strip()
        inputs = fb.get("inputs") or {}
        if not correction:
            out.skipped.append({"source": where, "reason": "no correction"})
            continue
        if task == "vqa":
            path = inputs.get("image_path")
            if not path or not inputs.get("question"):
                out.skipped.append({"source": where, "reason": "request has no stored image_path/question"})
                continue
            try:
                resolve_under(data_dir, path)
            except (BadRequest, NotFound) as exc:
                out.skipped.append({"source": where, "reason": exc.message})
                continue
            out.rows.append({"image_path": path, "question": inputs["question"], "answer": correction, "source": where})
        elif task == "qa":
            context, question = inputs.get("context"), inputs.get("question")
            if not context or not question:
                out.skipped.append({"source": where, "reason": "request has no stored question/context"})
                continue
            located = locate_answer(context, correction)
            if located is None:
                out.skipped.append({"source": where, "reason": "correction not found in the request's context"})
                continue
            out.rows.append({"id": fb["feedback_id"], "question": question, "context": context, **located,
                             "source": where})
        else:
            out.skipped.append({"source": where, "reason": "style feedback is a comment, not a training target"})
            continue
        out.feedback_ids.append(fb["feedback_id"])
    return out


def merge(task: str, *parts: Dataset) -> Dataset:
    out = Dataset(task)
    for part in parts:
        out.rows.extend(part.rows)
        out.skipped.extend(part.skipped)
        out.feedback_ids.extend(part.feedback_ids)
    return out


def split_holdout(rows: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held_out): a seeded shuffle; at least one row on each side."""
    if len(rows) < 2:
        raise Invalid(f"need at least 2 usable rows to train and hold one out, found {len(rows)}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_held = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    held = sorted(order[:n_held])
    train = sorted(order[n_held:])
    return [rows[i] for i in train], [rows[i] for i in held]


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
