"""The echo contract (torch-free): a text in, an answer and a confidence out."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.runtime import ModelInfo, PredictRequest

NAME = "echo"


class EchoInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=200, description="any short text")
    model: str | None = Field(None, max_length=64)


class EchoRequest(EchoInput, PredictRequest):
    pass


class EchoResponse(BaseModel):
    answer: str
    confidence: float
    model: ModelInfo
    latency_ms: float
    request_id: str
