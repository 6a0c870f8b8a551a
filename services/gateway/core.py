"""The gateway's protocol-free handler: route, call the backend, record the event."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.errors import LooplineError, NotFound, Unavailable
from services.common.events import EventStore, FeedbackRecord, InferenceEvent
from services.common.events.resilient import ResilientEventStore, StoreCollector
from services.common.keys import KeyStore
from services.common.logs import model_var, request_id_var, version_var
from services.common.registry import Registry
from services.common.settings import CommonSettings
from services.common.tasks import TASKS, get_task
from services.common.trust import group_key, latest_reviews, resolve

from .backends import Backend, BackendError
from .breaker import CircuitBreaker
from .routing import Route, Router
from .senders import FeedbackThrottle, Sender, Throttled
from .served import ServedIndex
from .settings import GatewaySettings
from .uploads import sweep_uploads, write_upload

log = logging.getLogger("loopline.gateway")
UPLOADS = Path("state") / "uploads"
UPLOAD_SWEEP_EVERY_S = 300.0


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("loopline_gateway_requests_total", "gateway requests", ("task", "status"),
                                registry=self.registry)
        self.latency = Histogram("loopline_gateway_latency_seconds", "gateway latency incl. backend", ("task",),
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                 registry=self.registry)
        self.breaker_open = Gauge("loopline_gateway_breaker_open", "1 while a backend's breaker is open",
                                  ("backend",), registry=self.registry)
        self.feedback = Counter("loopline_gateway_feedback_total", "feedback received", ("rating",),
                                registry=self.registry)
        self.feedback_throttled = Counter("loopline_gateway_feedback_throttled_total",
                                          "feedback calls refused with 429, by bucket", ("scope",),
                                          registry=self.registry)
        self.feedback_trust = Counter("loopline_gateway_feedback_trust_total",
                                      "corrections received, by trust state on arrival", ("state",),
                                      registry=self.registry)


class GatewayCore:
    def __init__(self, common: CommonSettings, settings: GatewaySettings, store: EventStore) -> None:
        self.common = common
        self.settings = settings
        self.store = store
        self.registry = Registry(common.registry)
        self.router = Router(self.registry)
        # answered request ids, shared by every replica through the data volume (feedback lookup)
        self.served = ServedIndex(common.state / "served", settings.served_index_ttl_s)
        self._next_upload_sweep = 0.0
        self._model_tasks: dict[str, str] = {}
        self._models_read_at = float("-inf")
        self.metrics = GatewayMetrics()
        self.keys = KeyStore(common.state)
        self.throttle = FeedbackThrottle(settings.feedback_rate_per_min, settings.feedback_burst,
                                         settings.feedback_address_rate_per_min, settings.feedback_address_burst)
        if isinstance(store, ResilientEventStore):
            self.metrics.registry.register(StoreCollector(store))  # type: ignore[arg-type]
        # SQLite and file writes run here, never on the event loop
        self.io = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="gateway-io")
        self.backends = {
            task: Backend(task, common.url_of(task), settings.timeout_of(task),
                          CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s))
            for task in TASKS
        }

    async def close(self) -> None:
        for backend in self.backends.values():
            await backend.close()
        self.io.shutdown(wait=True)
        self.store.close()

    async def record_rejection(self, event: InferenceEvent) -> None:
        self.metrics.requests.labels(event.task, "503").inc()
        self.store.record_inference(event)

    async def run_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # -- models ---------------------------------------------------------------------------
    def default_model(self, task: str, variant: str | None = None) -> str:
        """The model a request gets: a task with one model per variant (style) maps the variant's name."""
        spec = get_task(task)
        if spec.model_prefix:
            return spec.model_name(variant or self.settings.default_variant_of(task) or str(spec.default_variant))
        return self.settings.default_model_of(task) or str(spec.default_model)

    def variants(self, task: str, key: str) -> list[dict[str, Any]]:
        """The models of a task with one model per variant, by variant name (``GET /v1/styles``)."""
        spec = get_task(task)
        out = []
        for model in self.registry.models_for_task(spec.name):
            aliases = self.router.aliases(model)
            out.append({key: spec.short_name(model), "model": model, "production": aliases.get("production"),
                        "canary": aliases.get("canary")})
        return out

    def model_tasks(self) -> dict[str, str]:
        """model -> task, re-read at most every second (a directory walk per request cost more
        than the rest of a relay)."""
        now = time.monotonic()
        if now - self._models_read_at > 1.0:
            self._model_tasks = {m: self.registry.task_of(m) for m in self.registry.models()}
            self._models_read_at = now
        return self._model_tasks

    def check_model(self, task: str, model: str) -> None:
        if self.model_tasks().get(model) != task:
            spec = get_task(task)
            known = [spec.short_name(m) for m in self.registry.models_for_task(task)]
            what = task if spec.model_prefix else f"{task} model"
            raise NotFound(f"unknown {what} {spec.short_name(model)!r}; available: {', '.join(known) or 'none'}")

    # -- inference --------------------------------------------------------------------------
    async def infer(self, task: str, model: str, payload: dict[str, Any], *, explicit_version: str | None,
                    client_id: str | None, route_name: str, inputs: dict[str, Any],
                    route: Route | None = None) -> dict[str, Any]:
        """One answer; ``route`` when the caller already picked the version (a batch shares one)."""
        started = time.perf_counter()
        request_id = request_id_var.get() or ""
        status, error_code, result = 200, None, None
        try:
            self.check_model(task, model)
            route = route or self.router.route(model, explicit_version, client_id)
            result = await self._call(task, route, payload)
            # before answering: feedback on this id may reach another replica a moment later
            await self.run_io(self.remember_served, request_id, task, model, result)
            return result
        except LooplineError as exc:
            status, error_code = exc.status, exc.code
            raise
        except Exception:
            status, error_code = 500, "internal_error"
            raise
        finally:
            elapsed = time.perf_counter() - started
            served = (result or {}).get("model", {})
            if result is not None:
                result["latency_ms"] = round(elapsed * 1000, 2)
                result["request_id"] = request_id
            self.metrics.requests.labels(task, str(status)).inc()
            self.metrics.latency.labels(task).observe(elapsed)
            self.metrics.breaker_open.labels(task).set(1 if self.backends[task].breaker.state == "open" else 0)
            event = InferenceEvent(
                request_id=request_id, task=task, model=served.get("name") or model,
                version=served.get("version") if served else (route.version if route else None),
                latency_ms=round(elapsed * 1000, 3), confidence=(result or {}).get("confidence"), status=status,
                error_code=error_code, client_id=client_id, route=route_name, inputs=inputs,
                output=get_task(task).event_output_of(result))
            self.store.record_inference(event)  # queues without blocking
            model_var.set(event.model)
            version_var.set(event.version)
            log.info("%s %s -> %s", route_name, task, status,
                     extra={"event_action": "inference", "event_outcome": "success" if status < 400 else "failure",
                            "event_duration": int(elapsed * 1e9), "http.response.status_code": status,
                            "labels.confidence": event.confidence})

    async def infer_seed(self, task: str, payload: dict[str, Any], route_name: str) -> dict[str, Any]:
        """A seed project's compatibility route: the task's default model, no version pin, no client id;
        the event records the request's fields as sent."""
        return await self.infer(task, self.default_model(task), payload, explicit_version=None, client_id=None,
                                route_name=route_name, inputs=dict(payload))

    async def infer_many(self, task: str, model: str, payloads: list[dict[str, Any]], inputs: list[dict[str, Any]], *,
                         explicit_version: str | None, client_id: str | None, route_name: str) -> list[dict[str, Any]]:
        """N answers on one route, sent together so the backend's batcher takes them in as few
        model calls as it can. Each is an answered request of its own (event, feedback): item i of
        a batch of N > 1 has the request id ``<request id>.<i>``; a batch of one keeps the id."""
        self.check_model(task, model)
        route = self.router.route(model, explicit_version, client_id)
        request_id = request_id_var.get() or ""

        async def one(i: int) -> dict[str, Any]:
            request_id_var.set(request_id if len(payloads) == 1 else f"{request_id}.{i}")  # this task's copy only
            return await self.infer(task, model, payloads[i], explicit_version=explicit_version, client_id=client_id,
                                    route_name=route_name, inputs=inputs[i], route=route)

        answers = await asyncio.gather(*(one(i) for i in range(len(payloads))), return_exceptions=True)
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed:  # the protocol has no partial answer: the first error (each item's event is recorded)
            raise next((a for a in failed if isinstance(a, LooplineError)), failed[0])
        return [a for a in answers if not isinstance(a, BaseException)]

    def task_of_model(self, model: str) -> str:
        """The task of a registry model (404 naming the models when there is none)."""
        task = self.model_tasks().get(model)
        if task is None:
            raise NotFound(f"unknown model {model!r}; the models are {', '.join(sorted(self.model_tasks())) or 'none'}")
        return task

    async def _call(self, task: str, route: Route, payload: dict[str, Any]) -> dict[str, Any]:
        body = {**payload, "model": route.model}
        if route.version is not None:
            body["version"] = route.version
        backend = self.backends[task]
        try:
            return await backend.post("/v1/predict", body)
        except BackendError as exc:
            if exc.code == "version_not_loaded" and route.arm == "canary":
                # the canary is still loading in the backend: serve production meanwhile
                body.pop("version", None)
                return await backend.post("/v1/predict", body)
            raise

    def save_upload(self, data: bytes, suffix: str = ".img") -> str:
        """Keep an uploaded image (content-addressed) so feedback on it can be learned from."""
        digest = hashlib.sha256(data).hexdigest()
        rel = UPLOADS / f"{digest}{suffix}"
        path = self.common.data_dir / rel
        write_upload(path, data)
        if time.monotonic() >= self._next_upload_sweep:  # bounded: the volume also holds models and jobs
            self._next_upload_sweep = time.monotonic() + UPLOAD_SWEEP_EVERY_S
            sweep_uploads(path.parent, self.settings.uploads_max_age_s, self.settings.uploads_max_bytes)
        return str(rel)

    # -- feedback ---------------------------------------------------------------------------
    def admit_feedback(self, sender: Sender) -> None:
        """Raise 429 + Retry-After when the sender's or its address's bucket is empty."""
        refused = self.throttle.check(sender)
        if refused is None:
            return
        scope, wait = refused
        self.metrics.feedback_throttled.labels(scope).inc()
        log.warning("feedback throttled (%s bucket) for %s", scope, sender.id,
                    extra={"event_action": "feedback-throttled", "event_outcome": "failure",
                           "labels.sender": sender.id, "labels.scope": scope})
        what = "this sender" if scope == "sender" else "this source address"
        raise Throttled(f"too much feedback from {what}: retry after {wait:.0f} s", wait)

    async def feedback(self, request_id: str, rating: str, correction: str | None, comment: str | None,
                       sender: Sender | None = None) -> str:
        request = await self.run_io(self.find_request, request_id)
        if request is None:
            raise NotFound(f"no request with id {request_id!r}: feedback must name a request_id the gateway answered")
        record = FeedbackRecord(request_id=request_id, rating=rating, correction=correction, comment=comment,
                                task=request.get("task"), model=request.get("model"), version=request.get("version"),
                                sender=sender.id if sender else None,
                                sender_role=sender.role if sender else "anonymous",
                                trust="accepted" if sender is not None and sender.trusted else "pending")
        feedback_id = await self.run_io(self.store.record_feedback, record)
        self.metrics.feedback.labels(rating).inc()
        log.info("feedback %s on %s", rating, request_id,
                 extra={"event_action": "feedback", "labels.sender": record.sender})
        return str(feedback_id)

    def remember_served(self, request_id: str, task: str, model: str, result: dict[str, Any]) -> None:
        served = result.get("model") or {}
        try:
            self.served.add({"request_id": request_id, "task": task, "model": served.get("name") or model,
                             "version": served.get("version"), "at": time.time()})
        except OSError:  # the answer matters more: the event store still gets the request
            log.exception("could not record request %s in the served-request index", request_id)

    def find_request(self, request_id: str) -> dict[str, Any] | None:
        """The request, answered by this replica or another: the shared index first (no network, no
        store lag), then the event store."""
        return self.served.get(request_id) or self.store.get_request(request_id)

    def trust_of(self, feedback_id: str) -> str | None:
        """The correction's trust state now (None: no correction); quorum may accept it at once."""
        stored = self.store.get_feedback(feedback_id)
        if stored is None or not (stored.get("correction") or "").strip():
            return None
        try:
            rows = self.store.feedback(model=stored.get("model"), with_correction=True,
                                       limit=self.settings.feedback_trust_rows)
        except Unavailable:  # store down: the correction is kept (spooled); quorum is resolved when it is back
            return str(stored.get("trust") or "pending")
        mine = next((r for r in rows if r["feedback_id"] == feedback_id), None)
        if mine is None:
            return None
        key = group_key(mine)
        group = [r for r in rows if group_key(r) == key]
        state = resolve(group, latest_reviews(self.store), self.common.feedback_quorum)[feedback_id]["state"]
        self.metrics.feedback_trust.labels(state).inc()
        return str(state)

    # -- readiness --------------------------------------------------------------------------
    def own_problem(self) -> str | None:
        """Why this gateway cannot serve by itself (None when it can): the registry must be readable."""
        try:
            if self.registry.root.exists():
                next(self.registry.root.iterdir(), None)
        except OSError:
            return "registry not readable"
        return None

    async def model_not_ready(self, task: str, model: str, version: int | None) -> str | None:
        """Why a model (its production version, or ``version``) cannot answer now; None when it can."""
        try:
            status, body = await self.backends[task].get_json("/v1/versions", timeout_s=2.0)
        except Exception:  # any transport failure means not ready (details stay out of a public body)
            return f"the {task} service is unreachable"
        state = (body.get("models") or {}).get(model) if status == 200 else None
        if state is None:
            return f"the {task} service has not loaded {model!r}" if status == 200 else f"the {task} service answered {status}"
        wanted = version if version is not None else state.get("production")
        if wanted is None:
            return f"{model!r} has no production version"
        return None if wanted in state.get("loaded", []) else f"{model!r} version {wanted} is not loaded"

    async def not_ready(self) -> dict[str, str]:
        async def probe(task: str, backend: Backend) -> tuple[str, str | None]:
            try:
                status, body = await backend.get_json("/readyz", timeout_s=2.0)
            except Exception:  # any transport failure means not ready (details stay out of a public body)
                return task, "unreachable"
            if status == 200:
                return task, None
            return task, "; ".join(body.get("not_ready", [])) or f"readyz answered {status}"

        results = await asyncio.gather(*(probe(t, b) for t, b in self.backends.items()))
        return {task: reason for task, reason in results if reason}

