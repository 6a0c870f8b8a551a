"""The VQA seed's route, kept for its clients: ``POST /predict`` ``{"image_path", "question"}`` ->
answer, event, latency_seconds, quality_score, question (mounted by the gateway: ``Task.compat``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.gateway.deps import core_of

from .schemas import FAMILY_NAME, LegacyPredictIn, LegacyPredictOut

router = APIRouter(tags=["compatibility"])


@router.post("/predict", response_model=LegacyPredictOut, summary="VQA seed: answer a question about a stored image")
async def predict(request: Request, body: LegacyPredictIn) -> dict[str, Any]:
    result = await core_of(request).infer_seed(FAMILY_NAME, {"question": body.question, "image_path": body.image_path},
                                               "/predict")
    return {"answer": result["answer"], "event": "inference", "latency_seconds": round(result["latency_ms"] / 1000, 4),
            "quality_score": round(float(result["confidence"]), 4), "question": body.question}
