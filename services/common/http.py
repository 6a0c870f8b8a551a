"""HTTP plumbing shared by every FastAPI app: request ids, body limits, errors, security headers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from .errors import install_error_handlers
from .logs import REQUEST_ID_HEADER, clean_request_id, request_id_var

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestContextMiddleware:
    """Pure ASGI: sets the request id, limits the body, adds security headers.

    A body larger than ``max_body_bytes`` is refused with 413 before it is read in full,
    whether or not the client sent Content-Length.
    """

    def __init__(self, app: Any, max_body_bytes: int, csp: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.csp = csp.encode() if csp else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = clean_request_id(headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1") or None)
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(send, rid)
                return
            seen = 0
            too_large = False

            async def limited_receive() -> dict[str, Any]:
                nonlocal seen, too_large
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body_bytes:
                        too_large = True
                        raise _BodyTooLarge
                return message

            started = False

            async def send_with_headers(message: dict[str, Any]) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    extra = [(b"x-request-id", rid.encode())] + SECURITY_HEADERS
                    if self.csp:
                        extra.append((b"content-security-policy", self.csp))
                    message = {**message, "headers": list(message.get("headers", [])) + extra}
                await send(message)

            try:
                await self.app(scope, limited_receive, send_with_headers)
            except _BodyTooLarge:
                if not started:
                    await self._too_large(send, rid)
            except Exception:
                if too_large and not started:
                    await self._too_large(send, rid)
                else:
                    raise
        finally:
            request_id_var.reset(token)

    async def _too_large(self, send: Any, rid: str) -> None:
        body = json.dumps({"error": {"code": "payload_too_large",
                                     "message": f"request body is larger than {self.max_body_bytes} bytes"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", rid.encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


def base_app(title: str, max_body_bytes: int, description: str = "", csp: str | None = None,
             inner_middleware: list[tuple[type, dict[str, Any]]] | None = None, **kwargs: Any) -> FastAPI:
    """A FastAPI app with the error mapping and the request-context middleware outermost;
    ``inner_middleware`` runs inside it (request id already set, headers added on the way out)."""
    app = FastAPI(title=title, description=description, version="0.1.0", **kwargs)
    install_error_handlers(app)
    for cls, options in inner_middleware or []:
        app.add_middleware(cls, **options)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes, csp=csp)
    return app
