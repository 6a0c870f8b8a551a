"""Compatibility routes: the seed projects' curl calls keep working unchanged.

Each family's seed route lives in its package and is mounted from its registration
(``Task.compat``: ``/predict``, ``/answer``, ``/stylize``); the seeds' feedback form, which
names a request and no family, is the gateway's own: ``POST /feedback`` (its form fields).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.errors import Invalid
from services.common.text import Text

from .deps import feedback_sender
from .inputs import read_input

router = APIRouter(tags=["compatibility"])
OUTPUT_NAME = re.compile(r"^([A-Za-z0-9_.:-]{1,128})\.png$")


class LegacyFeedback(BaseModel):
    feedback: str = Field(..., min_length=1, max_length=32, description="good or bad (the seed's form)")
    model: str | None = Field(None, max_length=64)
    content_image_filename: str | None = Field(None, max_length=256)
    output_image_filename: str | None = Field(None, max_length=256)
    timestamp: str | None = Field(None, max_length=64)
    request_id: str | None = Field(None, max_length=128)
    comment: Text | None = Field(None, max_length=5000)


@router.post("/feedback", status_code=201, summary="Style seed: feedback form (feedback, model, filenames, timestamp)")
async def legacy_feedback(request: Request) -> JSONResponse:
    core, sender = feedback_sender(request)
    form, _ = await read_input(request, LegacyFeedback, (), 1)
    rating = form.feedback.strip().lower()
    if rating not in ("good", "bad"):
        raise Invalid("feedback must be 'good' or 'bad'")
    request_id = form.request_id
    if request_id is None and form.output_image_filename:
        match = OUTPUT_NAME.match(form.output_image_filename.rsplit("/", 1)[-1])
        request_id = match.group(1) if match else None
    if request_id is None:
        raise Invalid("name the stylized image: output_image_filename (as /stylize returned it) or request_id")
    feedback_id = await core.feedback(request_id, rating, None, form.comment, sender=sender)
    return JSONResponse({"status": "ok", "feedback_id": feedback_id}, status_code=201)


__all__ = ["router"]
