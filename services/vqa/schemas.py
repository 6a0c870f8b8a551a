"""The VQA contract, torch-free: one definition for the gateway's ``/v1/vqa`` and the VQA service."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from services.common.runtime import ModelInfo, PredictRequest
from services.common.text import Text

MAX_QUESTION_CHARS = 5000

FAMILY_NAME = "vqa"  # the name it registers under (family.py), for its own modules
DEFAULT_PORT = 8101


class VqaInput(BaseModel):
    """``POST /v1/vqa`` as JSON, or its multipart form fields (the image then comes as a file)."""

    question: Text = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS, description="a question about the image")
    image_b64: str | None = Field(None, description="JPEG/PNG/WebP bytes, base64")
    image_path: str | None = Field(None, description="path relative to the data root", max_length=1024)
    model: str | None = Field(None, max_length=64, description="registry model (default vqa-blip)")


class VqaRequest(VqaInput, PredictRequest):
    """What the VQA service takes: the same fields, with exactly one image."""

    @model_validator(mode="after")
    def _one_image(self) -> VqaRequest:
        if (self.image_b64 is None) == (self.image_path is None):
            raise ValueError("send exactly one of image_b64 or image_path")
        return self


class VqaResponse(BaseModel):
    answer: str
    confidence: float
    model: ModelInfo
    latency_ms: float
    request_id: str


# the seed project's route (compat.py), kept for its clients
class LegacyPredictIn(BaseModel):
    image_path: str = Field(..., min_length=1, max_length=1024)
    question: Text = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)


class LegacyPredictOut(BaseModel):
    answer: str
    event: str
    latency_seconds: float
    quality_score: float
    question: str
