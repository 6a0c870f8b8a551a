"""The generic serving app: HTTP, batching, version pool, health, metrics for any runtime.

Endpoints (``POST /v1/predict``, ``/healthz``, ``/readyz``, ``/v1/versions``, ``/metrics``)
parse and map errors; :class:`VersionPool` keeps the aliased versions loaded and swaps
them on alias changes; :class:`DynamicBatcher` forms batches per loaded version.
"""


import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .admission import AdmissionMiddleware
from .batching import DynamicBatcher
from .errors import LooplineError
from .http import base_app
from .logs import configure_logging, model_var, request_id_var, version_var
from .registry import Registry
from .runtime import ModelRuntime
from .settings import CommonSettings, ServingSettings, serving_settings
from .versions import LoadedVersion, VersionPool

log = logging.getLogger("loopline.serving")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version")
        self.latency = Histogram("loopline_request_latency_seconds", "request latency in the service",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("loopline_queue_wait_seconds", "time a request waited for its batch",
                                    labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("loopline_batch_size", "requests per model call", labels,
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.batch_seconds = Histogram("loopline_batch_seconds", "model time per batch", labels,
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("loopline_errors_total", "failed requests", (*labels, "code"), registry=self.registry)
        self.queue_depth = Gauge("loopline_queue_depth", "requests waiting for a batch", registry=self.registry)

    def observe_batch(self, key: LoadedVersion, size: int, waits: list[float], elapsed: float) -> None:
        labels = (key.model, str(key.version))
        self.batch_size.labels(*labels).observe(size)
        self.batch_seconds.labels(*labels).observe(elapsed)
        for wait in waits:
            self.queue_wait.labels(*labels).observe(wait)


def create_serving_app(runtime_cls: type[ModelRuntime], settings: ServingSettings | None = None,
                       common: CommonSettings | None = None) -> FastAPI:
    """A FastAPI app serving every registry model of ``runtime_cls.task``."""
    common = common or CommonSettings()
    settings = settings or serving_settings(runtime_cls.task)
    configure_logging(runtime_cls.task, common.log_level, common.log_file)
    runtime_cls.configure_threads(settings)
    metrics = ServingMetrics()
    # one model thread: batches run one at a time and use every intra-op thread
    model_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{runtime_cls.task}-model")
    prep_executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"{runtime_cls.task}-prep")
    pool = VersionPool(Registry(common.registry), runtime_cls, settings, common.data_dir, model_executor)

    def run_batch(key: LoadedVersion, items: list[Any]) -> list[Any]:
        model_var.set(key.model)
        version_var.set(key.version)
        return key.runtime.predict(items)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = DynamicBatcher(run_batch, max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                                 max_queue=settings.max_queue, executor=model_executor,
                                 observe=metrics.observe_batch)
        batcher.start()
        app.state.batcher = batcher
        watcher = asyncio.get_running_loop().create_task(pool.watch(), name="version-watch")
        try:
            yield
        finally:
            watcher.cancel()
            await batcher.stop()
            pool.close()
            model_executor.shutdown(wait=False, cancel_futures=True)
            prep_executor.shutdown(wait=False, cancel_futures=True)

    # admitted = being decoded + queued + in the running batch: the queue bound alone would let
    # unbounded decoding work pile up in front of it, so the door sheds before the body is read
    capacity = settings.max_queue + settings.max_batch_size
    admission = (AdmissionMiddleware, {"routes": {"/v1/predict": runtime_cls.task}, "max_inflight": capacity})
    app = base_app(f"Loopline {runtime_cls.task} service", settings.max_body_bytes, lifespan=lifespan,
                   inner_middleware=[admission],
                   description=f"Internal {runtime_cls.task} inference service; the gateway calls POST /v1/predict.")
    app.state.pool = pool
    app.state.metrics = metrics
    request_model = runtime_cls.request_model

    @app.post("/v1/predict", summary="Run the model on one input (batched with concurrent requests)")
    async def predict(request: Request, body: request_model,  # type: ignore[valid-type]
                      x_model_version: int | None = Header(None)) -> JSONResponse:
        started = time.perf_counter()
        loaded = pool.pick(runtime_cls.model_name(body), body.version if body.version is not None else x_model_version)
        labels = (loaded.model, str(loaded.version))
        model_var.set(loaded.model)
        version_var.set(loaded.version)
        loaded.inflight += 1
        try:
            item = await asyncio.get_running_loop().run_in_executor(prep_executor, loaded.runtime.prepare, body)
            metrics.queue_depth.set(request.app.state.batcher.depth)
            result = await request.app.state.batcher.submit(loaded, item, settings.request_timeout_s)
        except LooplineError as exc:
            metrics.errors.labels(*labels, exc.code).inc()
            raise
        except Exception:
            metrics.errors.labels(*labels, "internal_error").inc()
            raise
        finally:
            loaded.inflight -= 1
        elapsed = time.perf_counter() - started
        metrics.latency.labels(*labels).observe(elapsed)
        return JSONResponse({**result, "model": loaded.describe(), "latency_ms": round(elapsed * 1000, 2),
                             "request_id": request_id_var.get()})

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: production versions loaded and warmed up")
    async def readyz() -> JSONResponse:
        missing = pool.not_ready()
        if missing:
            return JSONResponse({"status": "not ready", "not_ready": missing,
                                 "error": {"code": "not_ready", "message": "; ".join(missing)}},
                                status_code=503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready", "models": pool.snapshot()})

    @app.get("/v1/versions", summary="What is loaded: models, versions, aliases")
    async def versions() -> dict[str, Any]:
        return {"task": runtime_cls.task, "models": pool.snapshot(), "failed": pool.failures()}

    @app.post("/v1/reload", summary="Re-read the registry now instead of at the next poll")
    async def reload() -> dict[str, Any]:
        await pool.sync()
        return {"models": pool.snapshot()}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        metrics.queue_depth.set(app.state.batcher.depth if hasattr(app.state, "batcher") else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
