"""A backend that answers at once: measures what the gateway itself costs per request.

Plain ASGI (no framework) so the stub is never the bottleneck of a relay test.
"""

from __future__ import annotations

import json
from typing import Any

ANSWER = json.dumps({"answer": "paris", "confidence": 0.9, "start": 0, "end": 5,
                     "model": {"name": "qa-extractive", "task": "qa", "version": 1},
                     "latency_ms": 0.0, "request_id": "stub"}).encode()
READY = json.dumps({"status": "ready", "models": {}}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    body = ANSWER if scope["method"] == "POST" else READY
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    return app
