"""Training rows from datasets and feedback, through each family's data adapter (``Task.data``).

Rows are plain dicts so they can be written to a job directory (the Kubernetes runner hands them
to the training pod as JSON); their shape is the family's (``services/<family>/data.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.datasets import Dataset, resolve_dir, split_holdout
from services.common.images import resolve_under
from services.common.tasks import get_task

__all__ = ["Dataset", "feedback_dataset", "load_dataset", "merge", "resolve_dir", "split_holdout"]


def load_dataset(task: str, data_dir: Path, relative: str) -> Dataset:
    path = resolve_under(data_dir, relative)
    return get_task(task).data_adapter().dataset(data_dir, path, relative)


def feedback_dataset(task: str, data_dir: Path, rows: list[dict[str, Any]]) -> Dataset:
    """Feedback corrections (joined with their requests) as training rows; the rest is reported."""
    adapter = get_task(task).data_adapter()
    out = Dataset(task)
    for fb in rows:
        where = f"feedback:{fb['feedback_id']}"
        correction = (fb.get("correction") or "").strip()
        if not correction:
            out.skipped.append({"source": where, "reason": "no correction"})
            continue
        row = adapter.feedback_row(fb.get("inputs") or {}, correction, fb["feedback_id"], data_dir)
        if isinstance(row, str):
            out.skipped.append({"source": where, "reason": row})
            continue
        out.rows.append({**row, "source": where})
        out.feedback_ids.append(fb["feedback_id"])
    return out


def merge(task: str, *parts: Dataset) -> Dataset:
    out = Dataset(task)
    for part in parts:
        out.rows.extend(part.rows)
        out.skipped.extend(part.skipped)
        out.feedback_ids.extend(part.feedback_ids)
    return out
