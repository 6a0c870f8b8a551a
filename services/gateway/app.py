"""The gateway app: public routes, every registered family's routes, compatibility routes, the browser UI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from services.common.admission import AdmissionMiddleware
from services.common.auth import load_or_create_admin_token
from services.common.events import EventsSettings, InferenceEvent, open_event_store
from services.common.http import base_app
from services.common.logs import configure_logging
from services.common.settings import CommonSettings

from . import api, compat, families, oip, review
from .core import GatewayCore
from .settings import GatewaySettings

STATIC = Path(__file__).resolve().parent / "static"
# the UI loads nothing from elsewhere: scripts, styles and images are all same-origin
UI_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(common: CommonSettings | None = None, settings: GatewaySettings | None = None) -> FastAPI:
    common = common or CommonSettings()
    settings = settings or GatewaySettings()
    settings.check_backend_limits()
    configure_logging("gateway", common.log_level, common.log_file,
                      max_bytes=common.log_max_bytes, backups=common.log_backups)
    common.state.mkdir(parents=True, exist_ok=True)
    admin_token = load_or_create_admin_token(common)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_event_store(EventsSettings(), common.state)
        app.state.core = GatewayCore(common, settings, store)
        try:
            yield
        finally:
            await app.state.core.close()

    async def record_rejection(event: InferenceEvent) -> None:
        await app.state.core.record_rejection(event)

    def oip_group(path: str) -> str | None:
        return oip.admission_group(app.state.core, path)

    # load shedding runs right after the request id is set and before any body is read; a /v2 infer
    # call shares its model's task budget
    admission = (AdmissionMiddleware, {"routes": families.admission_routes(), "max_inflight": settings.max_inflight,
                                       "record": record_rejection, "resolve": oip_group,
                                       "plain_error_prefix": oip.PREFIX + "/"})
    app = base_app("Loopline gateway", settings.max_body_bytes, lifespan=lifespan, csp=UI_CSP, inner_middleware=[admission],
                   description="VQA, extractive QA and style transfer behind one API, with feedback and monitoring.")
    app.state.admin_token = admin_token
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Client-Id", "X-Model-Version",
                                          "Inference-Header-Content-Length"],
                           expose_headers=["Inference-Header-Content-Length", "X-Request-ID"])
    app.include_router(api.router)
    app.include_router(families.build_router())
    app.include_router(compat.router)
    app.include_router(oip.router)
    app.include_router(review.router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app
