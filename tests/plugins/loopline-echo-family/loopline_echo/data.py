"""Echo rows: ``{"text", "answer"}`` from corrected answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.datasets import DataAdapter

from .schemas import NAME


class EchoData(DataAdapter):
    task = NAME

    def feedback_row(self, inputs: dict[str, Any], correction: str, feedback_id: str,
                     data_dir: Path) -> dict[str, Any] | str:
        if not inputs.get("text"):
            return "request has no stored text"
        return {"text": inputs["text"], "answer": correction}
