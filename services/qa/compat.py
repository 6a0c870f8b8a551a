"""The QA seed's route, kept for its clients: ``POST /answer`` ``{"question", "context"}`` -> answer,
confidence, start_pos, end_pos (mounted by the gateway: ``Task.compat``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.gateway.deps import core_of

from .schemas import FAMILY_NAME, LegacyAnswerOut, QaInput

router = APIRouter(tags=["compatibility"])


@router.post("/answer", response_model=LegacyAnswerOut, summary="QA seed: find the answer in a context")
async def answer(request: Request, body: QaInput) -> dict[str, Any]:
    result = await core_of(request).infer_seed(FAMILY_NAME, {"question": body.question, "context": body.context},
                                               "/answer")
    return {"answer": result["answer"], "confidence": result["confidence"], "start_pos": result["start"],
            "end_pos": result["end"]}
