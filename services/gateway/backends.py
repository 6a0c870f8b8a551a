"""One pooled async HTTP client per inference backend, with timeouts, one retry on
connection failure, and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from services.common.errors import GatewayTimeout, LooplineError, Unavailable
from services.common.logs import REQUEST_ID_HEADER, request_id_var

from .breaker import CircuitBreaker

log = logging.getLogger("loopline.gateway.backends")


class BackendError(LooplineError):
    """A 4xx/5xx answer from a backend, passed through to the client."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, status=status, headers=headers)


class Backend:
    def __init__(self, name: str, base_url: str, timeout_s: float, breaker: CircuitBreaker) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.breaker = breaker
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(2.0, timeout_s)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def post(self, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        if not self.breaker.allow():
            raise Unavailable(f"the {self.name} service is unavailable; retry shortly", code="backend_unavailable",
                              retry_after=self.breaker.retry_after())
        send_headers = {REQUEST_ID_HEADER: request_id_var.get() or "", **(headers or {})}
        try:
            response = await self._send(path, payload, send_headers)
        except httpx.TimeoutException:
            self.breaker.failure()
            raise GatewayTimeout(f"the {self.name} service did not answer within {self.timeout_s:.0f} s") from None
        except httpx.TransportError as exc:
            self.breaker.failure()
            log.warning("backend %s unreachable: %s", self.name, type(exc).__name__)
            raise Unavailable(f"the {self.name} service is unavailable; retry shortly", code="backend_unavailable",
                              retry_after=self.breaker.retry_after() or 1.0) from None
        if response.status_code >= 500 and response.status_code != 503:
            self.breaker.failure()
        else:
            self.breaker.success()
        if response.status_code >= 400:
            raise _passthrough(self.name, response)
        return response.json()

    async def _send(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            return await self.client.post(path, json=payload, headers=headers)
        except httpx.ConnectError:
            # nothing reached the backend: one retry is safe (a pod may just have moved)
            await asyncio.sleep(0.05)
            return await self.client.post(path, json=payload, headers=headers)

    async def get_json(self, path: str, timeout_s: float = 2.0) -> tuple[int, dict[str, Any]]:
        response = await self.client.get(path, timeout=timeout_s)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {}


def _passthrough(name: str, response: httpx.Response) -> BackendError:
    try:
        err = response.json().get("error", {})
        code, message = str(err.get("code", "backend_error")), str(err.get("message", ""))
    except (ValueError, AttributeError):
        code, message = "backend_error", ""
    if response.status_code >= 500 and response.status_code != 503:
        return BackendError(502, "backend_error", f"the {name} service failed; see its log")
    headers = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
    return BackendError(response.status_code, code, message or f"{name} answered {response.status_code}", headers)
