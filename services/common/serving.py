"""The generic serving app: HTTP, batching, version pool, health, metrics for any runtime.

Three layers per request: the endpoints below parse and map errors; :class:`InferenceHandler`
picks the version, prepares the input off the event loop, submits it to the batcher and
measures; the runtime (``load``/``predict``) runs on the one model thread.
"""

# no ``from __future__ import annotations``: FastAPI must see the runtime's request model
# class in the endpoint signature, not the string "request_model"
import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .admission import AdmissionMiddleware
from .batching import DynamicBatcher
from .errors import LooplineError
from .http import base_app
from .logs import configure_logging, model_var, request_id_var, version_var
from .registry import Registry
from .runtime import ModelRuntime, PredictRequest
from .settings import CommonSettings, ServingSettings
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
        self.prepare_seconds = Histogram("loopline_prepare_seconds", "validate + decode one request (prep thread)",
                                         labels, buckets=LATENCY_BUCKETS, registry=self.registry)
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


class InferenceHandler:
    """Protocol-free request path: pick a version -> prepare -> batch -> predict, measured once here."""

    def __init__(self, runtime_cls: type[ModelRuntime], settings: ServingSettings, registry: Registry,
                 data_dir: Path) -> None:
        self.runtime_cls = runtime_cls
        self.settings = settings
        self.metrics = ServingMetrics()
        # one model thread: batches run one at a time and use every intra-op thread
        self.model_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{runtime_cls.task}-model")
        self.prep_executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"{runtime_cls.task}-prep")
        self.pool = VersionPool(registry, runtime_cls, settings, data_dir, self.model_executor)
        self.batcher: DynamicBatcher | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Inside the running loop: asyncio objects are created here, never in ``__init__``."""
        self.batcher = DynamicBatcher(self._run_batch, max_batch_size=self.settings.max_batch_size,
                                      max_wait_ms=self.settings.max_wait_ms, max_queue=self.settings.max_queue,
                                      executor=self.model_executor, observe=self.metrics.observe_batch)
        self.batcher.start()
        self._watcher = asyncio.get_running_loop().create_task(self.pool.watch(), name="version-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.batcher is not None:
            await self.batcher.stop()
        self.pool.close()
        self.model_executor.shutdown(wait=False, cancel_futures=True)
        self.prep_executor.shutdown(wait=False, cancel_futures=True)

    @property
    def queue_depth(self) -> int:
        return self.batcher.depth if self.batcher is not None else 0

    def _run_batch(self, key: LoadedVersion, items: list[Any]) -> list[Any]:
        model_var.set(key.model)
        version_var.set(key.version)
        return key.runtime.predict(items)

    async def predict(self, body: PredictRequest, header_version: int | None) -> dict[str, Any]:
        started = time.perf_counter()
        loaded = self.pool.pick(self.runtime_cls.model_name(body),
                                body.version if body.version is not None else header_version)
        labels = (loaded.model, str(loaded.version))
        model_var.set(loaded.model)
        version_var.set(loaded.version)
        loaded.inflight += 1
        assert self.batcher is not None, "the handler is started by the app's lifespan"
        try:
            self.batcher.preparing(+1)
            try:
                prep_started = time.perf_counter()
                item = await asyncio.get_running_loop().run_in_executor(self.prep_executor, loaded.runtime.prepare,
                                                                        body)
                self.metrics.prepare_seconds.labels(*labels).observe(time.perf_counter() - prep_started)
            finally:
                self.batcher.preparing(-1)
            self.metrics.queue_depth.set(self.queue_depth)
            result = await self.batcher.submit(loaded, item, self.settings.request_timeout_s)
        except LooplineError as exc:
            self.metrics.errors.labels(*labels, exc.code).inc()
            raise
        except Exception:
            self.metrics.errors.labels(*labels, "internal_error").inc()
            raise
        finally:
            loaded.inflight -= 1
        elapsed = time.perf_counter() - started
        self.metrics.latency.labels(*labels).observe(elapsed)
        return {**result, "model": loaded.describe(), "latency_ms": round(elapsed * 1000, 2)}

    def prometheus_text(self) -> bytes:
        self.metrics.queue_depth.set(self.queue_depth)
        return generate_latest(self.metrics.registry)


def create_serving_app(runtime_cls: type[ModelRuntime], settings: ServingSettings | None = None,
                       common: CommonSettings | None = None) -> FastAPI:
    """A FastAPI app serving every registry model of ``runtime_cls.task``."""
    common = common or CommonSettings()
    settings = settings or runtime_cls.settings_class()
    configure_logging(runtime_cls.task, common.log_level, common.log_file,
                      max_bytes=common.log_max_bytes, backups=common.log_backups)
    runtime_cls.configure_threads(settings)
    handler = InferenceHandler(runtime_cls, settings, Registry(common.registry), common.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await handler.start()
        try:
            yield
        finally:
            await handler.stop()

    # admitted = being decoded + queued + in the running batch: the queue bound alone would let
    # unbounded decoding work pile up in front of it, so the door sheds before the body is read
    capacity = settings.max_queue + settings.max_batch_size
    admission = (AdmissionMiddleware, {"routes": {"/v1/predict": runtime_cls.task}, "max_inflight": capacity})
    app = base_app(f"Loopline {runtime_cls.task} service", settings.max_body_bytes, lifespan=lifespan,
                   inner_middleware=[admission],
                   description=f"Internal {runtime_cls.task} inference service; the gateway calls POST /v1/predict.")
    app.state.handler = handler
    app.state.pool = handler.pool
    request_model = runtime_cls.request_model

    @app.post("/v1/predict", summary="Run the model on one input (batched with concurrent requests)")
    async def predict(body: request_model,  # type: ignore[valid-type]
                      x_model_version: int | None = Header(None)) -> JSONResponse:
        result = await handler.predict(body, x_model_version)
        return JSONResponse({**result, "request_id": request_id_var.get()})

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: production versions loaded and warmed up")
    async def readyz() -> JSONResponse:
        missing = handler.pool.not_ready()
        if missing:
            return JSONResponse({"status": "not ready", "not_ready": missing,
                                 "error": {"code": "not_ready", "message": "; ".join(missing)}},
                                status_code=503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready", "models": handler.pool.snapshot()})

    @app.get("/v1/versions", summary="What is loaded: models, versions, aliases")
    async def versions() -> dict[str, Any]:
        return {"task": runtime_cls.task, "models": handler.pool.snapshot(), "failed": handler.pool.failures()}

    @app.post("/v1/reload", summary="Re-read the registry now instead of at the next poll")
    async def reload() -> dict[str, Any]:
        await handler.pool.sync()
        return {"models": handler.pool.snapshot()}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(handler.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    return app
