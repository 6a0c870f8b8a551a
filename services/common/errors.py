"""One exception hierarchy; each carries an HTTP status and a stable code.

A single handler (:func:`install_error_handlers`) turns them into
``{"error": {"code", "message"}}``. Unexpected exceptions are logged with their
traceback and answered with a generic 500 that never carries internals.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("loopline.errors")


class LooplineError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(LooplineError):
    status, code = 400, "bad_request"


class Unauthorized(LooplineError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "admin token missing or wrong") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(LooplineError):
    status, code = 404, "not_found"


class Conflict(LooplineError):
    status, code = 409, "conflict"


class PayloadTooLarge(LooplineError):
    status, code = 413, "payload_too_large"


class UnsupportedMedia(LooplineError):
    status, code = 415, "unsupported_media_type"


class Invalid(LooplineError):
    status, code = 422, "invalid_input"


class Unavailable(LooplineError):
    """Not ready, overloaded or a backend down: the client may retry later."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, round(retry_after)))})


class GatewayTimeout(LooplineError):
    status, code = 504, "timeout"


class RegistryError(LooplineError):
    status, code = 400, "registry_error"


def install_error_handlers(app: Any) -> None:
    """Register the one error mapping on a FastAPI app."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(LooplineError)
    async def _loopline(_: Request, exc: LooplineError) -> JSONResponse:
        if exc.status >= 500 and exc.status != 503:
            log.error("request failed: %s", exc.message, extra={"error_code": exc.code})
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": describe_validation(exc.errors())}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if message == "There was an error parsing the body":
            message = "the body is not valid JSON (or is nested too deeply)"
        return JSONResponse({"error": {"code": code, "message": message}},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", type(exc).__name__)
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error; see the service log"}},
                            status_code=500)


def describe_validation(errors: Any) -> str:
    """Turn pydantic's error list into one sentence a person can act on."""
    parts = []
    for err in list(errors)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
