"""Every family's public routes, derived from its registration in the task table.

For each family: ``POST /v1/<family>`` takes the family's request model (JSON, or multipart when
its signature has an image input), picks the model (a family with one model per variant maps the
variant's name), records what feedback can learn from, and answers with the family's response
model; a family with variants also gets ``GET /v1/<variant>s``; the seed project's compatibility
routes come from the family (``Task.compat``); and ``GET /v1/families`` tells the browser UI what
panels to draw. Adding a family touches none of this.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.routing import APIRoute

from services.common.tasks import TASKS, Task, load_object

from .core import GatewayCore
from .deps import core_of
from .inputs import IMAGE_FIELDS, image_payload, openapi_body, read_input

Handler = Callable[..., Coroutine[Any, Any, dict[str, Any]]]


def _form_fields(task: Task) -> dict[str, Any]:
    """The multipart form's fields besides the image (documentation)."""
    fields = {spec.field: {"type": "string"} for spec in task.signature.inputs if spec.kind != "image"}
    if "model" in task.request.model_fields:
        fields["model"] = {"type": "string"}
    return fields


async def _recorded_inputs(core: GatewayCore, task: Task, body: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """What the inference event keeps of a request: its text, and the image as a stored upload when
    the family learns from feedback (a correction then has the image to train on)."""
    recorded: dict[str, Any] = {}
    for spec in task.signature.inputs:
        if spec.kind != "image":
            recorded[spec.field] = getattr(body, spec.field)
        elif not task.learns_from_feedback or "image_path" in payload:
            recorded["image_path"] = payload.get("image_path")
        else:
            try:
                raw = base64.b64decode(payload["image_b64"], validate=True)
            except (binascii.Error, ValueError):
                continue  # the backend answers 422 for this one
            recorded["image_path"] = await core.run_io(core.save_upload, raw)
    return recorded


def _model_of(core: GatewayCore, task: Task, body: Any) -> str:
    variant = task.signature.of_kind("variant")
    if variant is not None:
        return core.default_model(task.name, getattr(body, variant.field))
    return getattr(body, "model", None) or core.default_model(task.name)


def inference_handler(task: Task) -> Handler:
    """``POST /v1/<family>``: parse, pick the model, infer, answer."""
    takes_image = task.signature.of_kind("image") is not None

    async def infer(request: Request, x_model_version: str | None = Header(None),
                    x_client_id: str | None = Header(None), **parsed: Any) -> dict[str, Any]:
        core = core_of(request)
        if takes_image:
            body, upload = await read_input(request, task.request, IMAGE_FIELDS, core.settings.max_body_bytes)
        else:
            body, upload = parsed["body"], None
        payload: dict[str, Any] = {}
        for spec in task.signature.inputs:
            if spec.kind == "image":
                payload.update(image_payload(body.image_b64, body.image_path, upload))
            else:
                payload[spec.field] = getattr(body, spec.field)
        return await core.infer(task.name, _model_of(core, task, body), payload, explicit_version=x_model_version,
                                client_id=x_client_id, route_name=task.route,
                                inputs=await _recorded_inputs(core, task, body, payload))

    # a family without an image takes JSON only, validated by FastAPI against its request model
    params = [p for p in inspect.signature(infer).parameters.values() if p.kind != p.VAR_KEYWORD]
    if not takes_image:
        params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=task.request))
    infer.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])  # type: ignore[attr-defined]
    return infer


def variants_handler(task: Task, key: str) -> Handler:
    async def variants(request: Request) -> dict[str, Any]:
        return {f"{key}s": core_of(request).variants(task.name, key)}

    return variants


def describe(task: Task) -> dict[str, Any]:
    """A family as the browser UI draws it: its route, named inputs and outputs, and its panel's words."""
    variant = task.signature.of_kind("variant")
    return {"name": task.name, "summary": task.summary, "route": task.route,
            "variants": f"/v1/{variant.field}s" if variant else None,
            "learns_from_feedback": task.learns_from_feedback,
            "inputs": [{"name": s.name, "field": s.field, "kind": s.kind, "optional": s.optional,
                        "max_length": _max_length(task, s.field)} for s in task.signature.inputs],
            "outputs": [{"name": s.name, "field": s.field, "kind": s.kind} for s in task.signature.outputs],
            "ui": dict(task.ui)}


def _max_length(task: Task, field: str) -> int | None:
    info = task.request.model_fields.get(field)
    return next((m.max_length for m in (info.metadata if info else []) if hasattr(m, "max_length")), None)


def compat_router(task: Task) -> APIRouter | None:
    return load_object(task.compat) if task.compat else None


def build_router() -> APIRouter:
    router = APIRouter()
    for task in TASKS.values():
        openapi = (openapi_body(task.request, "image", _form_fields(task))
                   if task.signature.of_kind("image") is not None else None)
        router.add_api_route(task.route, inference_handler(task), methods=["POST"], tags=["inference"],
                             response_model=task.response, summary=task.ui.get("title") or task.summary,
                             openapi_extra=openapi, name=task.name)
        variant = task.signature.of_kind("variant")
        if variant is not None:
            router.add_api_route(f"/v1/{variant.field}s", variants_handler(task, variant.field), methods=["GET"],
                                 tags=["inference"], summary=f"{variant.field.capitalize()}s that can be requested")
        compat = compat_router(task)
        if compat is not None:
            router.include_router(compat)

    @router.get("/v1/families", tags=["inference"], summary="Every model family: route, inputs, outputs (the UI's panels)")
    async def families() -> dict[str, Any]:
        return {"families": [describe(task) for task in TASKS.values()]}

    return router


def admission_routes() -> dict[str, str]:
    """POST path -> the family whose in-flight budget it shares (its /v1 route and seed routes)."""
    routes: dict[str, str] = {}
    for task in TASKS.values():
        routes[task.route] = task.name
        compat = compat_router(task)
        for route in compat.routes if compat is not None else []:
            if isinstance(route, APIRoute) and "POST" in route.methods:
                routes[route.path] = task.name
    return routes


__all__ = ["admission_routes", "build_router", "describe"]
