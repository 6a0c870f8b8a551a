"""Reviewing corrections (reviewer or admin key): groups waiting for a decision, accept/reject
one by one, by group or by sender, and the image a VQA correction was given on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from services.common.errors import BadRequest, NotFound
from services.common.images import resolve_under
from services.common.trust import groups, latest_reviews, record_review, reject_sender, resolve, versions_trained_on

from .deps import reviewer
from .schemas import ReviewIn

router = APIRouter(tags=["feedback"])


def _states(core: Any, model: str | None) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    rows = core.store.feedback(model=model, with_correction=True, limit=core.settings.feedback_trust_rows)
    return rows, resolve(rows, latest_reviews(core.store), core.common.feedback_quorum)


@router.get("/v1/feedback/groups", summary="Corrections grouped by model, served answer and correction (reviewer)")
async def feedback_groups(request: Request, model: str | None = Query(None, max_length=64),
                          state: str | None = Query(None, pattern="^(pending|accepted|rejected)$"),
                          limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    core, _ = reviewer(request)
    rows, states = await core.run_io(_states, core, model)
    found = groups(rows, states)
    if state:
        found = [g for g in found if g["states"][state]]
    return {"quorum": core.common.feedback_quorum, "groups": found[:limit], "total": len(found)}


@router.get("/v1/feedback/corrections", summary="Every correction with sender and trust state (reviewer)")
async def feedback_corrections(request: Request, model: str | None = Query(None, max_length=64),
                               sender: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    core, _ = reviewer(request)
    rows, states = await core.run_io(_states, core, model)
    out = [{"feedback_id": r["feedback_id"], "ts": r.get("ts"), "model": r.get("model"), "version": r.get("version"),
            "sender": r.get("sender"), "sender_role": r.get("sender_role"), "correction": r.get("correction"),
            "served": (r.get("output") or {}).get("answer"), **states[r["feedback_id"]]}
           for r in rows if r["feedback_id"] in states and (sender is None or r.get("sender") == sender)]
    return {"corrections": out}


@router.post("/v1/feedback/review", summary="Accept or reject corrections: by id, a whole group, or a sender (reviewer)")
async def feedback_review(request: Request, body: ReviewIn) -> dict[str, Any]:
    core, who = reviewer(request)
    if bool(body.feedback_ids) + (body.group is not None) + (body.sender is not None) != 1:
        raise BadRequest("name exactly one of feedback_ids, group or sender")
    if body.sender is not None:
        if body.action != "reject":
            raise BadRequest("a sender can only be rejected as a whole; accept their groups one by one")
        return await core.run_io(lambda: reject_sender(core.store, core.registry, body.sender, who.id, body.reason))

    def apply() -> dict[str, Any]:
        rows, states = _states(core, None)
        if body.group is not None:
            ids = [fid for g in groups(rows, states) if g["group"] == body.group for fid in g["feedback_ids"]]
        else:
            ids = [fid for fid in body.feedback_ids if fid in states]
        if not ids:
            raise NotFound("no correction matches: check the ids or the group")
        doc = record_review(core.store, body.action, ids, who.id, body.reason,
                            **({"group": body.group} if body.group else {}))
        return {"action": body.action, "count": len(ids), "review": doc,
                "versions": versions_trained_on(core.registry, ids) if body.action == "reject" else []}

    return await core.run_io(apply)


@router.get("/v1/feedback/reviews", summary="The audit trail: who accepted or rejected what, and when (reviewer)")
async def feedback_reviews(request: Request, limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
    core, _ = reviewer(request)
    events = await core.run_io(lambda: core.store.events("feedback_review", limit=10_000))
    return {"reviews": sorted(events, key=lambda e: -float(e.get("ts", 0)))[:limit]}


@router.get("/v1/feedback/{feedback_id}/image", summary="The image a VQA correction was given on (reviewer)")
async def feedback_image(request: Request, feedback_id: str) -> FileResponse:
    core, _ = reviewer(request)
    fb = await core.run_io(core.store.get_feedback, feedback_id)
    request_row = await core.run_io(core.store.get_request, fb["request_id"]) if fb else None
    path = ((request_row or {}).get("inputs") or {}).get("image_path")
    if not path:
        raise NotFound("this correction has no stored image")
    return FileResponse(resolve_under(core.common.data_dir, path))
