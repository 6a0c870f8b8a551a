"""The style seed's route, kept for its clients: ``POST /stylize`` multipart (content image + model
choice) -> the stylized image (mounted by the gateway: ``Task.compat``; the seed's feedback form,
``POST /feedback``, is the gateway's own)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.common.errors import NotFound
from services.common.logs import request_id_var
from services.common.tasks import get_task
from services.gateway.core import GatewayCore
from services.gateway.deps import core_of
from services.gateway.inputs import IMAGE_FIELDS, image_payload, openapi_body, read_input

from .schemas import FAMILY_NAME

router = APIRouter(tags=["compatibility"])


class StylizeForm(BaseModel):
    model: str | None = Field(None, max_length=64)
    model_name: str | None = Field(None, max_length=64)
    model_choice: str | None = Field(None, max_length=64)
    style: str | None = Field(None, max_length=64)
    image_b64: str | None = None
    image_path: str | None = Field(None, max_length=1024)

    def choice(self) -> str | None:
        return self.model or self.model_name or self.model_choice or self.style


def resolve_style_choice(core: GatewayCore, choice: str | None) -> str:
    """'mosaic', 'style-mosaic', or the seed UI's 'model1'..'modelN' (styles in name order)."""
    styles = sorted(s["model"] for s in core.variants(FAMILY_NAME, "style"))
    if not choice:
        return core.default_model(FAMILY_NAME)
    value = choice.strip().lower()
    numbered = re.fullmatch(r"model[_-]?(\d+)", value)
    if numbered:
        index = int(numbered.group(1)) - 1
        if not 0 <= index < len(styles):
            raise NotFound(f"there is no {choice}: {len(styles)} styles are available")
        return styles[index]
    return get_task(FAMILY_NAME).model_name(value)


@router.post("/stylize", summary="Style seed: multipart content image + model choice",
             openapi_extra=openapi_body(StylizeForm, "content_image", {"model": {"type": "string"}}))
async def stylize(request: Request) -> dict[str, Any]:
    core = core_of(request)
    form, upload = await read_input(request, StylizeForm, IMAGE_FIELDS, core.settings.max_body_bytes)
    model = resolve_style_choice(core, form.choice())
    payload = {"style": get_task(FAMILY_NAME).short_name(model), **image_payload(form.image_b64, form.image_path, upload)}
    result = await core.infer(FAMILY_NAME, model, payload, explicit_version=None, client_id=None, route_name="/stylize",
                              inputs={"style": payload["style"], "image_path": payload.get("image_path")})
    rid = request_id_var.get()
    return {"stylized_image": result["image_b64"], "image_b64": result["image_b64"],
            "output_image_filename": f"{rid}.png", "model": model, "style": result.get("style"),
            "model_version": result["model"]["version"], "request_id": rid, "latency_ms": result["latency_ms"]}
