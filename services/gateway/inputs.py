"""Parse a JSON or multipart body into a validated model (+ the uploaded file's bytes)."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from services.common.errors import Invalid, PayloadTooLarge, UnsupportedMedia, describe_validation

M = TypeVar("M", bound=BaseModel)
# multipart field names an image may arrive under (the seeds' clients used all of these)
IMAGE_FIELDS = ("image", "file", "content_image", "content")


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise Invalid("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Invalid("the JSON body must be an object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(describe_validation(exc.errors())) from None


async def read_input(request: Request, model: type[M], file_fields: tuple[str, ...],
                     max_file_bytes: int) -> tuple[M, bytes | None]:
    """JSON: fields as sent. Multipart: form fields plus the first file among ``file_fields``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/json", "") or ctype.endswith("+json"):
        data = await json_body(request)
        return validate(model, data), None
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=4, max_fields=32)
        except Exception as exc:  # python-multipart raises several types for broken bodies
            raise Invalid(f"could not parse the form body ({type(exc).__name__})") from None
        fields: dict[str, Any] = {}
        upload: bytes | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key in file_fields and upload is None:
                    upload = await value.read(max_file_bytes + 1)
                    if len(upload) > max_file_bytes:
                        raise PayloadTooLarge(f"the uploaded file is larger than {max_file_bytes} bytes")
            elif key not in fields:
                fields[key] = value
        return validate(model, fields), upload
    raise UnsupportedMedia(f"send application/json or multipart/form-data, not {ctype!r}")


def image_payload(image_b64: str | None, image_path: str | None, upload: bytes | None) -> dict[str, str]:
    """Exactly one image source, as the backend's JSON fields."""
    given = [x is not None for x in (image_b64, image_path, upload)]
    if sum(given) != 1:
        raise Invalid("send exactly one image: a file upload, image_b64 or image_path")
    if upload is not None:
        if not upload:
            raise Invalid("the uploaded image is empty")
        return {"image_b64": base64.b64encode(upload).decode("ascii")}
    if image_b64 is not None:
        return {"image_b64": image_b64}
    return {"image_path": str(image_path)}


def openapi_body(model: type[BaseModel], file_field: str, form_fields: dict[str, Any]) -> dict[str, Any]:
    """Document a route that takes JSON or multipart."""
    props = {file_field: {"type": "string", "format": "binary"}, **form_fields}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": props,
                                           "required": [file_field, *[k for k in form_fields if k != "model"]]}},
    }}}
