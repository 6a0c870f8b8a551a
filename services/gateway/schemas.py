"""Request and response models of the gateway's public contract (ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.common.text import Text


class ModelInfo(BaseModel):
    name: str
    task: str
    version: int


class VqaJson(BaseModel):
    question: Text = Field(..., min_length=1, max_length=5000, description="a question about the image")
    image_b64: str | None = Field(None, description="JPEG/PNG/WebP bytes, base64")
    image_path: str | None = Field(None, description="path relative to the data root", max_length=1024)
    model: str | None = Field(None, max_length=64, description="registry model (default vqa-blip)")


class QaJson(BaseModel):
    question: Text = Field(..., min_length=1, max_length=5000)
    context: Text = Field(..., min_length=1, description="any length: long texts are read in overlapping windows")
    model: str | None = Field(None, max_length=64)


class StyleJson(BaseModel):
    style: str = Field(..., min_length=1, max_length=64, description="a style from GET /v1/styles")
    image_b64: str | None = None
    image_path: str | None = Field(None, max_length=1024)


class VqaResponse(BaseModel):
    answer: str
    confidence: float
    model: ModelInfo
    latency_ms: float
    request_id: str


class QaResponse(BaseModel):
    answer: str
    confidence: float
    start: int
    end: int
    model: ModelInfo
    latency_ms: float
    request_id: str


class StyleResponse(BaseModel):
    image_b64: str = Field(..., description="PNG, base64")
    style: str | None
    model: ModelInfo
    latency_ms: float
    request_id: str


class FeedbackIn(BaseModel):
    request_id: str = Field(..., min_length=1, max_length=128)
    rating: Literal["good", "bad"]
    correction: Text | None = Field(None, max_length=100_000, description="the right answer (VQA/QA) or a note (style)")
    comment: Text | None = Field(None, max_length=5000)


class FeedbackOut(BaseModel):
    feedback_id: str
    trust: Literal["pending", "accepted", "rejected"] | None = Field(
        None, description="the correction's trust state (null without a correction); only accepted ones train")
    sender: str = Field(..., description="who sent it: key:<name>, client:<X-Client-Id> or addr:<source address>")


class ReviewIn(BaseModel):
    action: Literal["accept", "reject"]
    feedback_ids: list[str] = Field(default_factory=list, max_length=10_000, description="these corrections")
    group: str | None = Field(None, max_length=20_000, description="a whole group (GET /v1/feedback/groups)")
    sender: str | None = Field(None, max_length=200, description="everything this sender sent")
    reason: str | None = Field(None, max_length=500)


class PromoteIn(BaseModel):
    version: int = Field(..., ge=1)
    alias: Literal["production", "canary"] = "production"
    weight: float | None = Field(None, ge=0.0, le=1.0, description="canary traffic share")


class LegacyPredictIn(BaseModel):
    image_path: str = Field(..., min_length=1, max_length=1024)
    question: Text = Field(..., min_length=1, max_length=5000)


class LegacyPredictOut(BaseModel):
    answer: str
    event: str
    latency_seconds: float
    quality_score: float
    question: str


class LegacyAnswerIn(BaseModel):
    question: Text = Field(..., min_length=1, max_length=5000)
    context: Text = Field(..., min_length=1)


class LegacyAnswerOut(BaseModel):
    answer: str
    confidence: float
    start_pos: int
    end_pos: int
