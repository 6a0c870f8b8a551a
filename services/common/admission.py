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
    """``routes`` maps a POST path to the group (task) whose in-flight count it shares."""

    def __init__(self, app: Any, routes: dict[str, str], max_inflight: int,
                 record: Callable[[InferenceEvent], Any] | None = None) -> None:
        self.app = app
        self.routes = routes
        self.max_inflight = max_inflight
        self.record = record
        self.inflight = dict.fromkeys(set(routes.values()), 0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = self.routes.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if task is None:
            await self.app(scope, receive, send)
            return
        if self.inflight[task] >= self.max_inflight:
            started = time.perf_counter()
            await self._reject(send, task)
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

    async def _reject(self, send: Any, task: str) -> None:
        body = json.dumps({"error": {"code": "overloaded", "message": (
            f"at capacity for {task} ({self.max_inflight} requests in flight); retry shortly")}}).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": body})
