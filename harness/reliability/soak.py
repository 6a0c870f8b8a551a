"""A bounded soak through the gateway: fixed request rate across the three tasks plus
feedback, then proof that nothing was lost and no service leaked memory.

Only 127.0.0.1; bounded by duration and request count. The stack (tiny models in a temp
data dir, one process per service) is started here so the run is isolated and its RSS
can be sampled per service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.bench.procs import ServerProcess, child_env, serve_argv, tree_rss
from services.common.events.base import percentile
from services.common.registry import Registry
from services.ops.bootstrap import bootstrap_tiny

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"
INFERENCE_SERVICES = ("vqa", "qa", "style")


@dataclass
class SoakResult:
    duration_s: float
    target_rate: float
    sent: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    ok_request_ids: list[str] = field(default_factory=list)
    feedback_ids: list[str] = field(default_factory=list)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    events_lost: int = -1
    feedback_lost: int = -1

    def summary(self, warmup_fraction: float) -> dict[str, Any]:
        five = sum(n for s, n in self.by_status.items() if s.startswith("5"))
        return {
            "duration_s": round(self.duration_s, 1), "target_rate_rps": self.target_rate,
            "achieved_rate_rps": round(self.sent / self.duration_s, 2) if self.duration_s else 0.0,
            "requests": self.sent, "by_status": dict(sorted(self.by_status.items())), "5xx": five,
            "latency_p50_ms": percentile(self.latencies_ms, 50), "latency_p95_ms": percentile(self.latencies_ms, 95),
            "latency_p99_ms": percentile(self.latencies_ms, 99),
            "events_lost": self.events_lost, "feedback_lost": self.feedback_lost,
            "rss_drift": {name: rss_drift(samples, warmup_fraction) for name, samples in self.rss.items()},
        }


def rss_drift(samples: list[tuple[float, int]], warmup_fraction: float) -> float | None:
    """Relative change of RSS between the first and the last fifth after warm-up."""
    if len(samples) < 10:
        return None
    start = samples[0][0] + (samples[-1][0] - samples[0][0]) * warmup_fraction
    steady = [rss for t, rss in samples if t >= start]
    if len(steady) < 5:
        return None
    k = max(1, len(steady) // 5)
    first, last = sum(steady[:k]) / k, sum(steady[-k:]) / k
    return round((last - first) / first, 4)


class Stack:
    """vqa, qa, style and the gateway on free loopback ports, tiny models in ``data``."""

    def __init__(self, data: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data = data
        self.env = child_env(data, {"LOOPLINE_ADMIN_TOKEN": "soak-admin-token-0123456789abcdef", **(extra_env or {})})
        self.procs: dict[str, ServerProcess] = {}

    def start(self) -> Stack:
        for name in INFERENCE_SERVICES:
            self.procs[name] = ServerProcess(name, serve_argv(name), dict(self.env), self.data / "logs" / f"{name}.log")
            self.procs[name].start()
        for proc in self.procs.values():
            proc.wait_ready()
        gw_env = {**self.env, **{f"LOOPLINE_{n.upper()}_URL": p.url for n, p in self.procs.items()}}
        self.procs["gateway"] = ServerProcess("gateway", serve_argv("gateway"), gw_env, self.data / "logs" / "gateway.log")
        self.procs["gateway"].start().wait_ready()
        return self

    @property
    def url(self) -> str:
        return self.procs["gateway"].url

    def isolate_cpus(self) -> bool:
        """Pin the model services to the last core and the gateway (and this client) to the
        others, as separate pods would be: a saturated model must not starve the door."""
        import os

        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            return False
        for name, proc in self.procs.items():
            if proc.proc is None:
                continue
            target = {cores[-1]} if name in INFERENCE_SERVICES else set(cores[:-1])
            for pid in [proc.proc.pid, *[c.pid for c in psutil.Process(proc.proc.pid).children(recursive=True)]]:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    os.sched_setaffinity(int(tid), target)
        os.sched_setaffinity(0, set(cores[:-1]))
        return True

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def prepare_data(root: Path, registry_template: Path | None = None) -> Path:
    """The soak's data root: the samples, the tiny models (copied from ``registry_template``, a
    registry they were already built into, else trained here: a few minutes) and an empty state."""
    data = root / "data"
    shutil.copytree(SAMPLES, data / "samples")
    if registry_template is not None:
        shutil.copytree(registry_template, data / "registry", ignore=shutil.ignore_patterns("complete"))
    else:
        bootstrap_tiny(Registry(data / "registry"))
    (data / "state").mkdir()
    return data


def _request_mix(rng: random.Random, image_b64: str, ok_ids: list[str]) -> tuple[str, dict[str, Any]]:
    pick = rng.random()
    if pick < 0.2 and ok_ids:
        return "/v1/feedback", {"request_id": rng.choice(ok_ids), "rating": rng.choice(["good", "bad"]),
                                "correction": "Paris"}
    if pick < 0.55:
        return "/v1/qa", {"question": "What is the capital of France?",
                          "context": "France is a country in Europe. Its capital city is Paris. " * rng.randint(1, 20)}
    if pick < 0.8:
        return "/v1/vqa", {"question": "what color is the shape?", "image_b64": image_b64}
    return "/v1/style", {"style": rng.choice(["mosaic", "sketch"]), "image_path": "samples/images/red_square.png"}


async def drive(url: str, rate: float, duration_s: float, max_requests: int, result: SoakResult, seed: int = 0) -> None:
    """Open-loop load: one request every 1/rate seconds, whatever the answers' pace."""
    rng = random.Random(seed)
    image_b64 = base64.b64encode((SAMPLES / "images" / "blue_circle.jpg").read_bytes()).decode()
    lock = asyncio.Lock()

    async def one(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        try:
            r = await client.post(path, json=body, timeout=60)
            status = str(r.status_code)
        except httpx.HTTPError as exc:
            status, r = f"error:{type(exc).__name__}", None
        async with lock:
            result.by_status[status] = result.by_status.get(status, 0) + 1
            if r is not None and r.status_code == 200:
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.ok_request_ids.append(r.json()["request_id"])
            elif r is not None and r.status_code == 201:
                result.feedback_ids.append(r.json()["feedback_id"])

    started = time.perf_counter()
    tasks = []
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=64)) as client:
        i = 0
        while i < max_requests:
            due = started + i / rate
            now = time.perf_counter()
            if due - started > duration_s:
                break
            if due > now:
                await asyncio.sleep(due - now)
            path, body = _request_mix(rng, image_b64, result.ok_request_ids)
            tasks.append(asyncio.create_task(one(client, path, body)))
            i += 1
        await asyncio.gather(*tasks)
    result.sent = len(tasks)
    result.duration_s = time.perf_counter() - started


async def _raw_post(host: str, port: int, request: bytes, go: asyncio.Event) -> tuple[int, float, dict[str, str]]:
    """One HTTP/1.1 POST on its own connection, timed from the moment its bytes are written
    (a Python HTTP client would add its own queueing to a burst of hundreds)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await go.wait()
        t0 = time.perf_counter()
        writer.write(request)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        return status, (time.perf_counter() - t0) * 1000, headers
    finally:
        writer.close()


async def overload_burst(url: str, burst: int = 300, context_words: int = 3000) -> dict[str, Any]:
    """Past capacity at once: how fast are the rejections, and does the stack recover by itself?"""
    from urllib.parse import urlparse

    target = urlparse(url)
    body = json.dumps({"question": "what?", "context": "word " * context_words}).encode()
    request = (f"POST /v1/qa HTTP/1.1\r\nHost: {target.hostname}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    go = asyncio.Event()
    tasks = [asyncio.create_task(_raw_post(str(target.hostname), int(target.port or 80), request, go))
             for _ in range(burst)]
    await asyncio.sleep(0.5)  # every connection open before the first byte of any request
    go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    rejected = [dt for r in results if not isinstance(r, BaseException) and r[0] in (429, 503) for dt in [r[1]]]
    served = [r[1] for r in results if not isinstance(r, BaseException) and r[0] == 200]
    other: dict[str, int] = {}
    for r in results:
        key = type(r).__name__ if isinstance(r, BaseException) else str(r[0])
        if key not in ("200", "429", "503"):
            other[key] = other.get(key, 0) + 1
    retry_after_ok = all("retry-after" in r[2] for r in results
                         if not isinstance(r, BaseException) and r[0] in (429, 503))
    recovered = None
    async with httpx.AsyncClient(base_url=url) as client:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 30:
            r = await client.post("/v1/qa", json={"question": "q", "context": "c"}, timeout=30)
            if r.status_code == 200:
                recovered = round(time.perf_counter() - t0, 3)
                break
            await asyncio.sleep(0.1)
    return {"burst": burst, "served": len(served), "rejected": len(rejected), "other": other,
            "rejection_p50_ms": percentile(rejected, 50), "rejection_p99_ms": percentile(rejected, 99),
            "served_p99_ms": percentile(served, 99), "retry_after_on_every_rejection": retry_after_ok,
            "recovered_after_s": recovered}


def check_nothing_lost(data: Path, result: SoakResult, settle_s: float = 5.0) -> None:
    """Every 2xx has its inference event, every 201 its feedback. Inference events are
    group-committed every 20 ms, so a missing one gets ``settle_s`` to land before it counts."""
    deadline = time.monotonic() + settle_s
    while True:
        conn = sqlite3.connect(data / "state" / "events.db")
        try:
            have = {r[0] for r in conn.execute("SELECT request_id FROM inference WHERE status = 200")}
            fb = {r[0] for r in conn.execute("SELECT feedback_id FROM feedback")}
        finally:
            conn.close()
        result.events_lost = sum(1 for rid in result.ok_request_ids if rid not in have)
        result.feedback_lost = sum(1 for fid in result.feedback_ids if fid not in fb)
        if (result.events_lost == 0 and result.feedback_lost == 0) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def run_soak(duration_s: float = 300.0, rate: float = 10.0, max_requests: int = 100_000, warmup_fraction: float = 0.2,
             workdir: Path | None = None, keep: bool = False, fuzz_examples: int = 0,
             overload_burst_size: int = 0, registry_template: Path | None = None) -> dict[str, Any]:
    root = Path(workdir or tempfile.mkdtemp(prefix="loopline-soak-"))
    data = prepare_data(root, registry_template)
    stack = Stack(data).start()
    result = SoakResult(duration_s=duration_s, target_rate=rate)
    result.rss = {name: [] for name in stack.procs}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = time.monotonic()
            for name, proc in stack.procs.items():
                if proc.proc is not None:
                    result.rss[name].append((now, tree_rss(proc.proc.pid)))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    fuzzed: dict[str, Any] | None = None
    overload: dict[str, Any] | None = None
    try:
        asyncio.run(drive(stack.url, rate, duration_s, max_requests, result))
        stop.set()
        check_nothing_lost(data, result)  # before the burst and the fuzzing add their own events
        if overload_burst_size:
            isolated = stack.isolate_cpus()
            overload = asyncio.run(overload_burst(stack.url, overload_burst_size))
            overload["cpus_isolated"] = isolated
        if fuzz_examples:
            fuzzed = fuzz(stack.url, fuzz_examples, report_dir=root)
    finally:
        stop.set()
        sampler.join(2)
        stack.stop()
    summary = result.summary(warmup_fraction)
    if overload is not None:
        summary["overload"] = overload
    if fuzzed is not None:
        summary["fuzz"] = fuzzed
    summary["workdir"] = str(root)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return summary


def write_report(summary: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def fuzz(url: str, examples: int, timeout_s: float = 900.0, report_dir: Path | None = None) -> dict[str, Any]:
    """schemathesis against the gateway's OpenAPI: no 5xx, no hang (each request bounded)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
            "--max-examples", str(examples), "--request-timeout", "30", "--seed", "1",
            "--suppress-health-check", "all"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=report_dir or REPO)
    tail = "\n".join(proc.stdout.splitlines()[-25:])
    return {"examples_per_operation": examples, "exit_code": proc.returncode, "passed": proc.returncode == 0,
            "seconds": round(time.perf_counter() - t0, 1), "output_tail": tail}


def render_markdown(summary: dict[str, Any]) -> str:
    over = summary.get("overload") or {}
    fz = summary.get("fuzz") or {}
    drift = ", ".join(f"{k} {v:+.1%}" for k, v in summary["rss_drift"].items() if v is not None)
    rows = [
        ("requests served", f"{summary['requests']} in {summary['duration_s']:.0f} s ({summary['by_status']})"),
        ("rate held", f"{summary['achieved_rate_rps']} req/s (target {summary['target_rate_rps']})"),
        ("latency p50 / p95 / p99", f"{summary['latency_p50_ms']} / {summary['latency_p95_ms']} / "
                                    f"{summary['latency_p99_ms']} ms"),
        ("5xx", str(summary["5xx"])),
        ("events lost / feedback lost", f"{summary['events_lost']} / {summary['feedback_lost']}"),
        ("RSS drift after warm-up", drift or "n/a"),
    ]
    if over:
        rows.append(("overload burst", f"{over['burst']} at once: {over['served']} served, {over['rejected']} rejected "
                                        f"(503 + Retry-After: {over['retry_after_on_every_rejection']}), other "
                                        f"{over['other'] or 'none'}"))
        rows.append(("rejection latency p50 / p99", f"{over['rejection_p50_ms']} / {over['rejection_p99_ms']} ms "
                                                    "(goal p99 < 100 ms)"))
        rows.append(("recovered after the burst", f"{over['recovered_after_s']} s"))
    if fz:
        rows.append(("schemathesis", f"{fz['examples_per_operation']} examples per operation: "
                                     f"{'no failures' if fz['passed'] else 'FAILURES'} ({fz['seconds']} s)"))
    return "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def write_readme(summary: dict[str, Any], readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- soak:start -->\n", "<!-- soak:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + render_markdown(summary) + end + tail, encoding="utf-8")
