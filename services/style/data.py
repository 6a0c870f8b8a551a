"""Style training rows: the job names a style image and a folder of content images (its
``job_inputs``); feedback is a free comment, never a training target."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from services.common.datasets import DataAdapter, list_images, resolve_dir, split_holdout
from services.common.errors import BadRequest
from services.common.images import resolve_under

from .schemas import FAMILY_NAME


class StyleData(DataAdapter):
    task = FAMILY_NAME

    def dataset(self, data_dir: Path, path: Path, relative: str) -> Any:
        raise BadRequest(f"task {self.task!r} trains from style_image + content_dir, not a dataset file")

    def feedback_row(self, inputs: dict[str, Any], correction: str, feedback_id: str,
                     data_dir: Path) -> dict[str, Any] | str:
        return "style feedback is a comment, not a training target"

    def job_rows(self, request: dict[str, Any], data_dir: Path, fraction: float,
                 seed: int) -> tuple[list[Any], list[Any], dict[str, Any]]:
        style_path = resolve_under(data_dir, request["style_image"])
        folder = resolve_dir(data_dir, request["content_dir"])
        images = list_images(folder)
        train, held = split_holdout([{"path": str(p.relative_to(data_dir.resolve())), "style": str(style_path)}
                                     for p in images], fraction, seed)
        digest = hashlib.sha256(style_path.read_bytes())
        for p in images:
            digest.update(p.read_bytes())
        return train, held, {"rows": len(images), "train": len(train), "heldout": len(held), "skipped": [],
                             "style_image": request["style_image"], "content_dir": request["content_dir"],
                             "sha256": digest.hexdigest()}
