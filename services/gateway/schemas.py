"""Request and response models of the gateway's own routes (each family's are in its package: ``Task.request``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.common.text import Text


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
