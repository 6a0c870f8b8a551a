"""The gateway's public routes: health, feedback, models, fine-tune proxy, monitoring (each family's
inference routes come from its registration: ``families.py``)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.errors import BadRequest, Invalid, Unavailable
from services.common.tasks import TASKS

from .deps import admin, core_of, feedback_sender
from .inputs import json_body
from .schemas import FeedbackIn, FeedbackOut, PromoteIn

router = APIRouter()
WINDOW = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")


@router.get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"],
            summary="Ready when the gateway itself can serve; ?all=true: only when every backend is ready too")
async def readyz(request: Request,
                 every: bool = Query(False, alias="all", description="503 unless every backend is ready")) -> JSONResponse:
    core = core_of(request)
    # a Kubernetes readiness probe uses the plain form: one backend without ready pods must not take
    # the UI, feedback and the other tasks out of the Service, so backends are reported, not required
    own = await core.run_io(core.own_problem)
    missing = await core.not_ready()
    backends = {task: missing.get(task, "ready") for task in core.backends}
    body: dict[str, Any] = {"backends": backends, "event_store": core.store.health()}
    problems = {"gateway": own} if own else {}
    if every:
        problems.update(missing)
    if problems:
        names = ", ".join(sorted(problems))
        return JSONResponse({"status": "not ready", "not_ready": problems, **body,
                             "error": {"code": "not_ready", "message": f"not ready: {names}"}},
                            status_code=503, headers={"Retry-After": "2"})
    # inference does not need the event store: a store outage is reported, not a reason to stop serving
    return JSONResponse({"status": "ready", **body})


@router.post("/v1/feedback", tags=["feedback"], status_code=201, response_model=FeedbackOut,
             summary="Rate an answer; a correction teaches the next fine-tune",
             responses={404: {"description": "unknown request_id"},
                        429: {"description": "too much feedback from this sender or address (Retry-After)"}})
async def feedback(request: Request, body: FeedbackIn) -> dict[str, Any]:
    core, sender = feedback_sender(request)
    correction = body.correction.strip() if body.correction else None
    feedback_id = await core.feedback(body.request_id, body.rating, correction or None, body.comment, sender=sender)
    trust = await core.run_io(core.trust_of, feedback_id) if correction else None
    return {"feedback_id": feedback_id, "trust": trust, "sender": sender.id}


@router.get("/v1/models", tags=["models"], summary="Every model with task, versions, manifests and aliases")
async def models(request: Request) -> dict[str, Any]:
    core = core_of(request)
    return {"models": await core.run_io(lambda: [core.registry.describe(m) for m in core.registry.models()])}


@router.post("/v1/models/{model}/promote", tags=["models"], summary="Point an alias at a version (admin)")
async def promote(request: Request, model: str, body: PromoteIn) -> dict[str, Any]:
    core = admin(request)
    data = await core.run_io(lambda: core.registry.promote(model, body.version, body.alias, body.weight,
                                                           actor="api", reason="gateway promote"))
    return {"model": model, "aliases": data}


@router.post("/v1/models/{model}/rollback", tags=["models"], summary="Production back to its previous version (admin)")
async def rollback(request: Request, model: str) -> dict[str, Any]:
    core = admin(request)
    data = await core.run_io(lambda: core.registry.rollback(model, actor="api", reason="gateway rollback"))
    return {"model": model, "aliases": data}


@router.post("/v1/finetune", tags=["fine-tune"], status_code=201, summary="Start a fine-tuning job (admin)")
async def finetune_start(request: Request) -> Response:
    admin(request)
    return await _finetune(request, "POST", "/v1/jobs", await json_body(request))


@router.get("/v1/finetune", tags=["fine-tune"], summary="Recent fine-tuning jobs (admin)")
async def finetune_list(request: Request) -> Response:
    admin(request)
    return await _finetune(request, "GET", "/v1/jobs")


@router.get("/v1/finetune/{job_id}", tags=["fine-tune"], summary="A job's status, progress and version (admin)")
async def finetune_status(request: Request, job_id: str) -> Response:
    admin(request)
    return await _finetune(request, "GET", f"/v1/jobs/{job_id}")


@router.post("/v1/finetune/{job_id}/cancel", tags=["fine-tune"], summary="Cancel a job (admin)")
async def finetune_cancel(request: Request, job_id: str) -> Response:
    admin(request)
    return await _finetune(request, "POST", f"/v1/jobs/{job_id}/cancel")


async def _finetune(request: Request, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
    core = core_of(request)
    if not re.fullmatch(r"[/A-Za-z0-9_\-]+", path):
        raise BadRequest("invalid job id")
    url = core.common.url_of("finetune") + path
    headers = {"Authorization": f"Bearer {request.app.state.admin_token}"}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.request(method, url, json=body, headers=headers)
    except httpx.TransportError:
        raise Unavailable("the fine-tune service is unavailable; is it running?", code="backend_unavailable") from None
    return Response(response.content, status_code=response.status_code, media_type="application/json")


@router.get("/v1/metrics/summary", tags=["monitoring"],
            summary="Per task, model and version over a window: count, errors, latency, confidence, feedback")
async def metrics_summary(request: Request, task: str | None = Query(None, pattern=f"^({'|'.join(map(re.escape, TASKS))})$"),
                          window: str = Query("1h", max_length=16, description="e.g. 900, 15m, 1h, 7d")) -> dict[str, Any]:
    core = core_of(request)
    seconds = parse_window(window)
    rows = await core.run_io(lambda: core.store.summary(window_s=seconds, task=task))
    return {"window_s": seconds, "task": task, "models": rows}


def parse_window(window: str) -> float:
    match = WINDOW.match(window.strip().lower())
    if not match:
        raise Invalid("window must be a number of seconds or like 15m, 1h, 7d")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if not 1 <= value <= 90 * 86400:
        raise Invalid("window must be between 1 second and 90 days")
    return value


@router.get("/metrics", tags=["monitoring"], summary="Prometheus metrics")
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(core_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


__all__ = ["router"]
