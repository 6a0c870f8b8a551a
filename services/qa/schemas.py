"""The extractive QA contract, torch-free: one definition for the gateway's ``/v1/qa`` and the QA service."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.runtime import ModelInfo, PredictRequest
from services.common.text import Text

MAX_QUESTION_CHARS = 5000

FAMILY_NAME = "qa"  # the name it registers under (family.py), for its own modules
DEFAULT_PORT = 8102


class QaInput(BaseModel):
    question: Text = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS, description="the question")
    context: Text = Field(..., min_length=1, description="any length: long texts are read in overlapping windows")
    model: str | None = Field(None, max_length=64)


class QaRequest(QaInput, PredictRequest):
    """What the QA service takes: the same fields (and an optional version the gateway picked)."""


class QaResponse(BaseModel):
    answer: str
    confidence: float
    start: int
    end: int
    model: ModelInfo
    latency_ms: float
    request_id: str


# the seed project's route (compat.py), kept for its clients
class LegacyAnswerOut(BaseModel):
    answer: str
    confidence: float
    start_pos: int
    end_pos: int
