"""Open Inference Protocol v2 (REST) routes: health, server and model metadata, model ready, infer.

Per the KServe/Triton spec (``open-inference-protocol``, ``inference_rest.md``) plus Triton's
binary tensor data extension, so ``tritonclient.http`` and the ``kserve`` SDK talk to Loopline as
they talk to Triton, KServe, MLServer or OpenVINO Model Server. Model names are the registry's;
every family's tensors come from its signature (``Task.signature``, in the family's registration). An infer call
takes the same path as ``/v1``: version pick and canary (``/versions/<v>`` pins, ``X-Client-Id``
keeps a client on one side), the backend's batcher, one inference event per answer, feedback on
the request id. Errors are the protocol's ``{"error": "<sentence>"}``.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from services.common.errors import BadRequest, LooplineError, NotFound, UnsupportedMedia, describe_validation
from services.common.logs import request_id_var
from services.common.signatures import TensorSpec
from services.common.tasks import Task, get_task, signature_of

from .core import GatewayCore
from .deps import core_of
from .oip_codec import HEADER_LENGTH, encode_response, items_of, parse_request, wanted_outputs

log = logging.getLogger("loopline.gateway.oip")
PREFIX = "/v2"
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
EXTENSIONS = ["binary_tensor_data"]


class OipRoute(APIRoute):
    """Errors in the protocol's shape, ``{"error": "..."}``, with the status the rest of the API uses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LooplineError as exc:
                if exc.status >= 500 and exc.status != 503:
                    log.error("v2 request failed: %s", exc.message, extra={"error_code": exc.code})
                return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
            except RequestValidationError as exc:
                return JSONResponse({"error": describe_validation(exc.errors())}, status_code=400)

        return handle


router = APIRouter(prefix=PREFIX, tags=["open inference protocol v2"], route_class=OipRoute)


def admission_group(core: GatewayCore, path: str) -> str | None:
    """The task whose in-flight budget a ``/v2`` infer call shares (None: not an infer call, or a
    model the route will answer 404 for)."""
    match = INFER_PATH.match(path)
    return core.model_tasks().get(match.group(1)) if match else None


def _server_version() -> str:
    try:
        return version("loopline")
    except PackageNotFoundError:
        return "unknown"


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "loopline", "version": _server_version(), "extensions": EXTENSIONS}


@router.get("/health/live", summary="Server live: the gateway process answers")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Server ready: every backend is ready (503 names the others)")
async def ready(request: Request) -> JSONResponse:
    missing = await core_of(request).not_ready()
    if missing:
        names = ", ".join(f"{task} ({why})" for task, why in sorted(missing.items()))
        return JSONResponse({"ready": False, "error": f"not ready: {names}"}, status_code=503,
                            headers={"Retry-After": "2"})
    return JSONResponse({"ready": True})


def served_versions(core: GatewayCore, model: str) -> list[str]:
    """The versions a call may ask for: production and canary (the backends load aliases only)."""
    aliases = core.router.aliases(model)
    return [str(v) for v in dict.fromkeys((aliases.get("production"), aliases.get("canary"))) if v is not None]


@router.post("/repository/index", summary="Every model version (Triton's repository index, read-only)")
async def repository_index(request: Request) -> list[dict[str, Any]]:
    core = core_of(request)

    def index() -> list[dict[str, Any]]:
        rows = []
        for model in core.registry.models():
            served = served_versions(core, model)
            for v in core.registry.versions(model):
                row = {"name": model, "version": str(v), "state": "READY" if str(v) in served else "UNAVAILABLE"}
                if str(v) not in served:
                    row["reason"] = "neither production nor canary: not served"
                rows.append(row)
        return rows

    return await core.run_io(index)


def _version_of(text: str | None) -> str | None:
    if text is not None and not text.isdigit():
        raise BadRequest(f"a model version is a whole number, not {text!r}")
    return text


async def _metadata(request: Request, name: str, pinned: str | None) -> dict[str, Any]:
    core = core_of(request)
    task = get_task(core.task_of_model(name))
    versions = [str(v) for v in await core.run_io(core.registry.versions, name)]
    if pinned is not None and _version_of(pinned) not in versions:
        raise NotFound(f"model {name!r} has no version {pinned}; its versions are {', '.join(versions)}")
    signature = signature_of(task.name)
    served = await core.run_io(served_versions, core, name)
    return {"name": name, "versions": [pinned] if pinned else served, "platform": f"{task.framework}_loopline",
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": [-1]} for t in signature.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": [-1]} for t in signature.outputs],
            "parameters": {"task": task.name, "optional_inputs": ",".join(t.name for t in signature.inputs
                                                                           if t.optional)}}


@router.get("/models/{name}", summary="Model metadata: versions, named input and output tensors")
async def model_metadata(request: Request, name: str) -> dict[str, Any]:
    return await _metadata(request, name, None)


@router.get("/models/{name}/versions/{model_version}", summary="Metadata of one model version")
async def version_metadata(request: Request, name: str, model_version: str) -> dict[str, Any]:
    return await _metadata(request, name, model_version)


async def _ready(request: Request, name: str, pinned: str | None) -> JSONResponse:
    """200 when it answers now; 503 while an alias is still loading (or its backend is down); 404 for
    a version that does not exist or is not served (it will not become ready by waiting)."""
    core = core_of(request)
    task = core.task_of_model(name)
    if _version_of(pinned) is not None:
        versions = [str(v) for v in await core.run_io(core.registry.versions, name)]
        if pinned not in versions:
            raise NotFound(f"model {name!r} has no version {pinned}; its versions are {', '.join(versions)}")
        if pinned not in await core.run_io(served_versions, core, name):
            raise NotFound(f"version {pinned} of {name!r} is not served: only its production and canary versions are")
    why = await core.model_not_ready(task, name, int(pinned) if pinned else None)
    if why:
        return JSONResponse({"name": name, "ready": False, "error": why}, status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready", summary="Model ready: its backend has the production version loaded")
async def model_ready(request: Request, name: str) -> JSONResponse:
    return await _ready(request, name, None)


@router.get("/models/{name}/versions/{model_version}/ready", summary="Model version ready: loaded in its backend")
async def version_ready(request: Request, name: str, model_version: str) -> JSONResponse:
    return await _ready(request, name, model_version)


async def _infer(request: Request, name: str, pinned: str | None, client_id: str | None) -> Response:
    core = core_of(request)
    task = get_task(core.task_of_model(name))
    _version_of(pinned)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMedia(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    parsed, blobs = parse_request(await request.body(), request.headers.get(HEADER_LENGTH))
    signature = signature_of(task.name)
    items = items_of(parsed, blobs, signature, name, core.settings.oip_max_batch)
    outputs = wanted_outputs(parsed, signature, name)
    if parsed.id is not None:  # the protocol returns the caller's id: it is the request id too
        if len(parsed.id) > 120 or not all(c.isalnum() or c in "-_.:" for c in parsed.id):
            raise BadRequest("id must be at most 120 letters, digits or -_.: (it becomes the request id)")
        request_id_var.set(parsed.id)
    payloads, inputs = [], []
    for i, item in enumerate(items):
        payload, recorded = await _fields(core, task, name, signature.inputs, item, i)
        payloads.append(payload)
        inputs.append(recorded)
    results = await core.infer_many(task.name, name, payloads, inputs, explicit_version=pinned, client_id=client_id,
                                    route_name=request.url.path)
    served = results[0].get("model", {}).get("version")
    body, headers = encode_response(model=name, version=str(served) if served is not None else None,
                                    request_id=request_id_var.get() or "", results=results, outputs=outputs)
    return Response(body, headers=headers)


async def _fields(core: GatewayCore, task: Task, model: str, specs: tuple[TensorSpec, ...], item: dict[str, Any],
                  index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One item's request fields for the backend, and what its inference event records."""
    payload: dict[str, Any] = {}
    recorded: dict[str, Any] = {}
    for spec in specs:
        value = item.get(spec.name)
        if spec.kind == "variant":
            own = task.short_name(model)
            if value is not None and value.strip().lower() != own:
                raise BadRequest(f"model {model!r} is the {own!r} {spec.name}; input {spec.name!r} item {index} "
                                 f"asks for {value!r} (call that {spec.name}'s model instead)")
            payload[spec.field] = recorded[spec.field] = own
        elif spec.kind == "image":
            if not value:
                raise BadRequest(f"input {spec.name!r} item {index} is an empty image")
            payload[spec.field] = base64.b64encode(value).decode("ascii")
            if task.learns_from_feedback:  # kept, as /v1 keeps uploads, so a correction can train on it
                recorded["image_path"] = await core.run_io(core.save_upload, value)
        elif value is not None:
            payload[spec.field] = recorded[spec.field] = value
    return payload, recorded


@router.post("/models/{name}/infer", summary="Inference: JSON tensors or the binary tensor data extension")
async def infer(request: Request, name: str, x_client_id: str | None = Header(None)) -> Response:
    return await _infer(request, name, None, x_client_id)


@router.post("/models/{name}/versions/{model_version}/infer", summary="Inference on one pinned model version")
async def infer_version(request: Request, name: str, model_version: str,
                        x_client_id: str | None = Header(None)) -> Response:
    return await _infer(request, name, model_version, x_client_id)


__all__ = ["admission_group", "router"]
