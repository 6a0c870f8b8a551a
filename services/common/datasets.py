"""Training rows: what every family's data adapter fills, the held-out split, and the folders a
job may read. A family's adapter (``Task.data``) turns its dataset files, feedback corrections or a
job's own inputs into rows; the fine-tune service knows no family's row shape."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadRequest, Invalid, NotFound

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


class DataAdapter:
    """A family's rows. Override what the family learns from; the defaults learn from nothing."""

    task: str = ""

    def dataset(self, data_dir: Path, path: Path, relative: str) -> Dataset:
        """Rows of a dataset file (``path`` is ``relative`` resolved under the data root)."""
        raise BadRequest(f"task {self.task!r} does not train from a dataset file")

    def feedback_row(self, inputs: dict[str, Any], correction: str, feedback_id: str,
                     data_dir: Path) -> dict[str, Any] | str:
        """A training row from a correction and the request it corrects, or why there is none."""
        return f"{self.task} feedback is not a training target"

    def job_rows(self, request: dict[str, Any], data_dir: Path, fraction: float,
                 seed: int) -> tuple[list[Any], list[Any], dict[str, Any]] | None:
        """(train, held out, data record with its ``sha256``) for a family whose jobs carry their own
        inputs (``Task.job_inputs``); None: rows come from a dataset and feedback."""
        return None


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
