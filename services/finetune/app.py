"""The fine-tune service (:8104): the jobs API over the persistent queue and the one worker.

Every ``/v1/jobs`` route needs ``Authorization: Bearer <admin token>``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse

from services.common.auth import load_or_create_admin_token, require_admin
from services.common.errors import BadRequest, NotFound, Unavailable
from services.common.events import EventsSettings, open_event_store
from services.common.http import base_app
from services.common.leader import LeaderLock
from services.common.logs import configure_logging
from services.common.registry import Registry
from services.common.settings import CommonSettings
from services.common.tasks import TASKS, get_task

from .autopromote import AutoPromoter
from .candidate import prune_quarantine
from .pipeline import task_of
from .schemas import JobRequest, JobStatus, JobView
from .settings import FinetuneSettings
from .store import JobStore
from .worker import Worker

log = logging.getLogger("loopline.finetune")
LEADER_POLL_S = 1.0


def create_app(settings: FinetuneSettings | None = None, common: CommonSettings | None = None) -> FastAPI:
    common = common or CommonSettings()
    settings = settings or FinetuneSettings()
    configure_logging("finetune", common.log_level, common.log_file,
                      max_bytes=common.log_max_bytes, backups=common.log_backups)
    registry = Registry(common.registry)
    store = JobStore(common.state / "finetune.db")
    events = open_event_store(EventsSettings(), common.state, service="finetune")
    worker = Worker(settings=settings, store=store, registry=registry, events=events, data_dir=common.data_dir,
                    state_dir=common.state, quorum=common.feedback_quorum)
    promoter = AutoPromoter(settings, registry, events) if settings.auto_promote_after_s else None

    # one worker per data dir: a second instance (rollout overlap, a scale-up) waits as a standby
    leader = LeaderLock(common.state, "finetune")

    async def lead() -> None:
        if not leader.try_acquire():
            log.warning("%s", leader.standby_message(), extra={"event_action": "finetune-standby"})
            while not leader.try_acquire():
                await asyncio.sleep(LEADER_POLL_S)
            log.warning("the previous fine-tune leader stopped; this instance leads now")
        removed = registry.clean_partial()
        if removed:
            log.warning("removed %d partial version director(ies) left by a crash", len(removed))
        pruned = prune_quarantine(registry, settings.quarantine_keep)
        if pruned:
            log.info("removed %d refused candidate(s) beyond LOOPLINE_FINETUNE_QUARANTINE_KEEP", len(pruned))
        worker.recover()
        worker.start()
        if promoter:
            await promoter.run()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(lead())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.get_running_loop().run_in_executor(None, worker.stop)
            store.close()
            events.close()
            leader.release()

    app = base_app("Loopline fine-tune service", settings.max_body_bytes, lifespan=lifespan,
                   description="Training jobs: LoRA for VQA/QA, Keras for style, an evaluation gate before canary.")
    app.state.admin_token = load_or_create_admin_token(common)
    app.state.store, app.state.worker, app.state.settings = store, worker, settings
    admin = [Depends(require_admin)]

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the queue is open and the worker runs")
    async def readyz() -> JSONResponse:
        if not leader.held:
            return JSONResponse({"status": "standby", "error": {"code": "standby", "message": leader.standby_message()}},
                                status_code=503, headers={"Retry-After": "2"})
        if not worker.alive:
            return JSONResponse({"status": "not ready", "error": {"code": "not_ready", "message": "worker not running"}},
                                status_code=503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready", "runner": settings.runner, "current_job": worker.current})

    @app.post("/v1/jobs", status_code=202, response_model=JobView, dependencies=admin,
              summary="Queue a fine-tune job")
    async def submit(body: JobRequest) -> JobView:
        if not leader.held:  # the queue belongs to the leader: a standby writes nothing
            raise Unavailable(leader.standby_message(), code="standby", retry_after=2)
        try:
            task = task_of(registry, body.model)
        except NotFound:
            new = "; ".join(f"a new {t.name} model must be named {t.model_prefix}<name>" for t in TASKS.values()
                            if t.model_prefix)
            raise NotFound(f"no model named {body.model!r}" + (f"; {new}" if new else "")) from None
        if body.use_feedback and not get_task(task).learns_from_feedback:
            raise BadRequest(f"{task} feedback is free comments; {task} jobs train from "
                             f"{' + '.join(get_task(task).job_inputs) or 'their own data'}")
        if (body.style_image or body.content_dir) and not get_task(task).job_inputs:
            owners = " or ".join(t.name for t in TASKS.values() if t.job_inputs)
            raise BadRequest(f"style_image/content_dir are for {owners} models; {body.model} is task {task}")
        if body.use_feedback:  # refused now rather than queued to fail: nothing accepted to learn from
            try:
                await asyncio.to_thread(worker.accepted_feedback, body.model_dump())
            except Unavailable:
                pass  # the store may be back when the job starts; the worker says so if not
        job = store.create(model=body.model, task=task, runner=settings.runner, request=body.model_dump())
        log.info("queued job %s for %s", job.id, body.model, extra={"event_action": "finetune-queued"})
        worker.notify()
        return job

    @app.get("/v1/jobs", dependencies=admin, summary="Jobs, newest first")
    async def list_jobs(status: JobStatus | None = None, model: str | None = None,
                        limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        return {"jobs": [j.model_dump() for j in store.list(status=status, model=model, limit=limit)]}

    @app.get("/v1/jobs/{job_id}", response_model=JobView, dependencies=admin, summary="One job")
    async def get_job(job_id: str) -> JobView:
        return store.get(job_id)

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobView, dependencies=admin,
              summary="Cancel: queued jobs end now, running ones at their next step")
    async def cancel(job_id: str) -> JobView:
        job = store.request_cancel(job_id)
        worker.cancel(job_id)
        return job

    return app
