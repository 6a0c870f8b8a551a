"""Closed-loop load: N clients, each sends its next request when the previous answer arrives.

The client is a minimal HTTP/1.1 keep-alive connection over asyncio streams, so the
load generator costs a fraction of what a full client library would on a 2-core machine
where it shares the CPU with the servers it measures (relay tests reach thousands of
requests per second).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**24)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            await self._open()
        assert self.reader is not None and self.writer is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode("latin-1")
        self.writer.write(head + body)
        try:
            await self.writer.drain()
            return await self._read_response()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HttpError(f"connection lost: {type(exc).__name__}") from exc

    async def _read_response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        status_line = await self.reader.readuntil(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {status_line[:80]!r}")
        status = int(parts[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del body[-2:]
            payload = bytes(body)
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None


@dataclass
class LoadResult:
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rejected_s: list[float] = field(default_factory=list)  # latencies of 503 answers (load shedding)

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        return {"concurrency": self.concurrency, "requests": self.ok, "errors": sum(self.errors.values()),
                "error_kinds": self.errors, "elapsed_s": round(self.elapsed_s, 3),
                "throughput_rps": round(self.ok / self.elapsed_s, 3) if self.elapsed_s > 0 else 0.0,
                "p50_ms": ms(percentile(lat, 50)), "p95_ms": ms(percentile(lat, 95)),
                "p99_ms": ms(percentile(lat, 99)), "mean_ms": ms(sum(lat) / len(lat) if lat else None),
                "rejected": len(self.rejected_s), "rejection_p99_ms": ms(percentile(sorted(self.rejected_s), 99))}


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, max_requests: int, max_seconds: float,
                      min_requests: int = 0, expect_key: str | None = None) -> LoadResult:
    """Run ``concurrency`` clients until ``max_requests`` answers or ``max_seconds`` passed.

    Bodies are used round-robin. A request counts when it answers 200 (and, with
    ``expect_key``, its JSON holds that key); anything else is tallied by kind. Time
    runs out only after ``min_requests`` answers, so every cell has a few samples.
    """
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    result = LoadResult(concurrency)
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    def may_send() -> bool:
        if issued >= max_requests:
            return False
        return time.perf_counter() < deadline or issued < min_requests

    async def client(idx: int) -> None:
        nonlocal issued
        conn = Connection(host, port)
        try:
            while may_send():
                body = bodies[(issued + idx) % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    status, payload = await conn.request("POST", path, body)
                except (HttpError, OSError) as exc:
                    kind = type(exc).__name__
                    result.errors[kind] = result.errors.get(kind, 0) + 1
                    await asyncio.sleep(0.05)
                    continue
                latency = time.perf_counter() - t0
                if status != 200:
                    kind = f"http_{status}"
                    if status == 503:
                        result.rejected_s.append(latency)
                        await asyncio.sleep(0.02)  # a client backs off a little before its next try
                elif expect_key is not None and expect_key.encode() not in payload:
                    kind = "bad_body"
                else:
                    result.latencies_s.append(latency)
                    continue
                result.errors[kind] = result.errors.get(kind, 0) + 1
        finally:
            await conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result


async def open_loop(url: str, bodies: list[bytes], rate_rps: float, seconds: float, seed: int = 0,
                    expect_key: str | None = None) -> LoadResult:
    """Requests arrive as a Poisson process at ``rate_rps`` for ``seconds``, whatever the answers do
    (each on its own connection): latency under a steady offered load, not a self-throttling one."""
    import random

    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    result = LoadResult(concurrency=0)
    rng = random.Random(seed)
    started = time.perf_counter()

    async def one(body: bytes) -> None:
        conn = Connection(host, port)
        t0 = time.perf_counter()
        try:
            status, payload = await conn.request("POST", path, body)
        except (HttpError, OSError) as exc:
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            return
        finally:
            await conn.close()
        if status == 200 and (expect_key is None or expect_key.encode() in payload):
            result.latencies_s.append(time.perf_counter() - t0)
        else:
            result.errors[f"http_{status}"] = result.errors.get(f"http_{status}", 0) + 1

    tasks: list[asyncio.Task[None]] = []
    next_at = started
    i = 0
    while next_at < started + seconds:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(bodies[i % len(bodies)])))
        i += 1
        next_at += rng.expovariate(rate_rps)
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - started
    return result


def json_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
