"""Compatibility routes: the seed projects' curl calls keep working unchanged.

- VQA seed: ``POST /predict`` ``{"image_path", "question"}`` -> answer, event, latency_seconds, quality_score, question
- QA seed: ``POST /answer`` ``{"question", "context"}`` -> answer, confidence, start_pos, end_pos
- style seed: ``POST /stylize`` multipart (content image + model choice) and ``POST /feedback`` (its form fields)
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.errors import Invalid, NotFound
from services.common.logs import request_id_var
from services.common.tasks import TASKS
from services.common.text import Text

from .core import GatewayCore
from .deps import core_of, feedback_sender
from .inputs import IMAGE_FIELDS, image_payload, openapi_body, read_input
from .schemas import LegacyAnswerIn, LegacyAnswerOut, LegacyPredictIn, LegacyPredictOut

router = APIRouter(tags=["compatibility"])
MODEL_FIELDS = ("model", "model_name", "model_choice", "style")
OUTPUT_NAME = re.compile(r"^([A-Za-z0-9_.:-]{1,128})\.png$")


@router.post("/predict", response_model=LegacyPredictOut, summary="VQA seed: answer a question about a stored image")
async def predict(request: Request, body: LegacyPredictIn) -> dict[str, Any]:
    core = core_of(request)
    result = await core.infer("vqa", core.default_model("vqa"), {"question": body.question, "image_path": body.image_path},
                              explicit_version=None, client_id=None, route_name="/predict",
                              inputs={"question": body.question, "image_path": body.image_path})
    return {"answer": result["answer"], "event": "inference", "latency_seconds": round(result["latency_ms"] / 1000, 4),
            "quality_score": round(float(result["confidence"]), 4), "question": body.question}


@router.post("/answer", response_model=LegacyAnswerOut, summary="QA seed: find the answer in a context")
async def answer(request: Request, body: LegacyAnswerIn) -> dict[str, Any]:
    core = core_of(request)
    result = await core.infer("qa", core.default_model("qa"), {"question": body.question, "context": body.context},
                              explicit_version=None, client_id=None, route_name="/answer",
                              inputs={"question": body.question, "context": body.context})
    return {"answer": result["answer"], "confidence": result["confidence"], "start_pos": result["start"],
            "end_pos": result["end"]}


class StylizeForm(BaseModel):
    model: str | None = Field(None, max_length=64)
    model_name: str | None = Field(None, max_length=64)
    model_choice: str | None = Field(None, max_length=64)
    style: str | None = Field(None, max_length=64)
    image_b64: str | None = None
    image_path: str | None = Field(None, max_length=1024)

    def choice(self) -> str | None:
        return self.model or self.model_name or self.model_choice or self.style


def resolve_style_choice(core: GatewayCore, choice: str | None) -> str:
    """'mosaic', 'style-mosaic', or the seed UI's 'model1'..'modelN' (styles in name order)."""
    styles = sorted(s["model"] for s in core.styles())
    if not choice:
        return core.default_model("style")
    value = choice.strip().lower()
    numbered = re.fullmatch(r"model[_-]?(\d+)", value)
    if numbered:
        index = int(numbered.group(1)) - 1
        if not 0 <= index < len(styles):
            raise NotFound(f"there is no {choice}: {len(styles)} styles are available")
        return styles[index]
    return TASKS["style"].model_name(value)


@router.post("/stylize", summary="Style seed: multipart content image + model choice",
             openapi_extra=openapi_body(StylizeForm, "content_image", {"model": {"type": "string"}}))
async def stylize(request: Request) -> dict[str, Any]:
    core = core_of(request)
    form, upload = await read_input(request, StylizeForm, IMAGE_FIELDS, core.settings.max_body_bytes)
    model = resolve_style_choice(core, form.choice())
    payload = {"style": TASKS["style"].short_name(model), **image_payload(form.image_b64, form.image_path, upload)}
    result = await core.infer("style", model, payload, explicit_version=None, client_id=None, route_name="/stylize",
                              inputs={"style": payload["style"], "image_path": payload.get("image_path")})
    rid = request_id_var.get()
    return {"stylized_image": result["image_b64"], "image_b64": result["image_b64"],
            "output_image_filename": f"{rid}.png", "model": model, "style": result.get("style"),
            "model_version": result["model"]["version"], "request_id": rid, "latency_ms": result["latency_ms"]}


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
