"""Load shedding at the door: past ``max_inflight`` requests per route group the app answers
503 + Retry-After before reading the body, so rejections cost microseconds, not the work
they would have queued behind. The gateway records each rejection as an inference event."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .events import InferenceEvent


class AdmissionMiddleware:
    """``routes`` maps a POST path to the group (task) whose in-flight count it shares; ``resolve``
    names the group of other POST paths (a path with the model in it); paths under
    ``plain_error_prefix`` get the Open Inference Protocol's ``{"error": "..."}`` body."""

    def __init__(self, app: Any, routes: dict[str, str], max_inflight: int,
                 record: Callable[[InferenceEvent], Any] | None = None,
                 resolve: Callable[[str], str | None] | None = None, plain_error_prefix: str | None = None) -> None:
        self.app = app
        self.routes = routes
        self.max_inflight = max_inflight
        self.record = record
        self.resolve = resolve
        self.plain_error_prefix = plain_error_prefix
        self.inflight = dict.fromkeys(set(routes.values()), 0)

    def group_of(self, scope: dict[str, Any]) -> str | None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return None
        path = scope.get("path", "")
        task = self.routes.get(path)
        return task if task is not None or self.resolve is None else self.resolve(path)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = self.group_of(scope)
        if task is None:
            await self.app(scope, receive, send)
            return
        if self.inflight.setdefault(task, 0) >= self.max_inflight:
            started = time.perf_counter()
            plain = self.plain_error_prefix is not None and scope.get("path", "").startswith(self.plain_error_prefix)
            await self._reject(send, task, plain)
            if self.record is not None:
                rid = scope.get("state", {}).get("request_id", "")
                await self.record(InferenceEvent(request_id=rid, task=task, latency_ms=(time.perf_counter() - started) * 1000,
                                                 status=503, error_code="overloaded", route=scope["path"]))
            return
        self.inflight[task] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight[task] -= 1

    async def _reject(self, send: Any, task: str, plain: bool = False) -> None:
        message = f"at capacity for {task} ({self.max_inflight} requests in flight); retry shortly"
        body = json.dumps({"error": message} if plain else {"error": {"code": "overloaded", "message": message}}).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": body})
