"""``loopline serve watchdog``: the watchdog loop with health and its last decisions over HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.common.auth import load_or_create_admin_token
from services.common.events import EventsSettings, open_event_store
from services.common.http import base_app
from services.common.leader import LeaderLock
from services.common.logs import configure_logging
from services.common.settings import CommonSettings

from .service import Watchdog
from .settings import WatchdogSettings
from .triggers import make_trigger

log = logging.getLogger("loopline.watchdog")


def build_watchdog(common: CommonSettings | None = None, settings: WatchdogSettings | None = None) -> Watchdog:
    common = common or CommonSettings()
    settings = settings or WatchdogSettings()
    store = open_event_store(EventsSettings(), common.state, service="watchdog")
    token = load_or_create_admin_token(common) if settings.trigger == "finetune" else ""
    return Watchdog(common, settings, store, make_trigger(common, settings, token))


def create_app() -> FastAPI:
    common = CommonSettings()
    settings = WatchdogSettings()
    configure_logging("watchdog", common.log_level, common.log_file,
                      max_bytes=common.log_max_bytes, backups=common.log_backups)
    watchdog = build_watchdog(common, settings)
    # one watchdog per data dir: two would judge the same window and fire the same retraining twice
    leader = LeaderLock(common.state, "watchdog")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def loop() -> None:
            if not leader.try_acquire():
                log.warning("%s", leader.standby_message(), extra={"event_action": "watchdog-standby"})
                while not leader.try_acquire():
                    await asyncio.sleep(1.0)
                log.warning("the previous watchdog leader stopped; this instance leads now")
            while True:
                try:
                    await asyncio.to_thread(watchdog.run_once)
                except Exception:
                    log.exception("watchdog pass failed; next pass in %.0f s", settings.interval_s)
                await asyncio.sleep(settings.interval_s)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        watchdog.store.close()
        leader.release()

    app = base_app("Loopline watchdog", 64 * 1024, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not leader.held:
            return JSONResponse({"status": "standby", "error": {"code": "standby", "message": leader.standby_message()}},
                                status_code=503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready"})

    @app.get("/v1/decisions", summary="The last pass's decisions per model")
    async def decisions() -> dict[str, Any]:
        return {"trigger": settings.trigger, "decisions": watchdog.last,
                "states": {m: s.to_dict() for m, s in watchdog.states.items()}}

    return app
