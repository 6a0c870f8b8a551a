"""Open Inference Protocol v2 (REST) tensors <-> the task's per-item JSON fields.

Pure functions, no HTTP: :func:`parse_request` reads a JSON body or a body carrying the binary
tensor data extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then each
binary input's bytes in input order); :func:`items_of` turns the input tensors into one field
dict per batch item, checked against the family's :class:`Signature`; :func:`encode_response`
builds the answer, as JSON or with the requested outputs as binary data.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from services.common.errors import BadRequest, describe_validation
from services.common.signatures import Signature, TensorSpec

HEADER_LENGTH = "Inference-Header-Content-Length"
Parameters = dict[str, str | int | float | bool]


class InputTensor(BaseModel):
    name: str = Field(..., min_length=1, max_length=256)
    shape: list[int] = Field(..., max_length=8)
    datatype: str = Field(..., max_length=16)
    parameters: Parameters | None = None
    data: Any = None


class RequestedOutput(BaseModel):
    name: str = Field(..., min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferRequest(BaseModel):
    id: str | None = Field(None, max_length=128)
    parameters: Parameters | None = None
    inputs: list[InputTensor] = Field(..., min_length=1, max_length=64)
    outputs: list[RequestedOutput] | None = Field(None, max_length=64)


def parse_request(raw: bytes, header_length: str | None) -> tuple[InferRequest, dict[str, bytes]]:
    """The request object and the binary data of each input sent as binary (by input name)."""
    if header_length is None:
        header, rest = raw, b""
    else:
        if not header_length.strip().isdigit():
            raise BadRequest(f"{HEADER_LENGTH} must be a whole number of bytes")
        size = int(header_length)
        if size == 0:
            raise BadRequest(f"{HEADER_LENGTH}: 0 (a raw binary request) is not supported: every model here has "
                             "named inputs, so send the JSON inference header first")
        if size > len(raw):
            raise BadRequest(f"{HEADER_LENGTH} says {size} bytes but the body holds {len(raw)}")
        header, rest = raw[:size], raw[size:]
    try:
        data = json.loads(header)
    except (ValueError, RecursionError):
        raise BadRequest("the inference request is not valid JSON" +
                         ("" if header_length else f" (binary tensor data needs the {HEADER_LENGTH} header)")) from None
    if not isinstance(data, dict):
        raise BadRequest("the inference request must be a JSON object")
    try:
        request = InferRequest.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc.errors())) from None
    blobs: dict[str, bytes] = {}
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequest(f"input {tensor.name!r}: binary_data_size must be a whole number of bytes")
        if offset + size > len(rest):
            raise BadRequest(f"input {tensor.name!r}: binary_data_size {size} runs past the end of the body")
        blobs[tensor.name] = rest[offset:offset + size]
        offset += size
    if offset != len(rest):
        raise BadRequest(f"{len(rest) - offset} bytes after the tensors' binary data that no binary_data_size accounts for")
    return request, blobs


def split_bytes(blob: bytes, name: str) -> list[bytes]:
    """BYTES elements in the binary extension: each a 4-byte little-endian length, then the bytes."""
    out, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise BadRequest(f"input {name!r}: binary BYTES data ends inside an element's 4-byte length")
        (size,) = struct.unpack_from("<I", blob, offset)
        offset += 4
        if offset + size > len(blob):
            raise BadRequest(f"input {name!r}: a BYTES element of {size} bytes runs past its binary data")
        out.append(blob[offset:offset + size])
        offset += size
    return out


def _flatten(data: Any) -> list[Any]:
    """Row-major elements of a nested JSON array (iterative: nesting depth is the client's)."""
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _elements(tensor: InputTensor, spec: TensorSpec, blobs: Mapping[str, bytes]) -> list[bytes | str]:
    if tensor.datatype != spec.datatype:
        raise BadRequest(f"input {tensor.name!r} must be {spec.datatype}, not {tensor.datatype}")
    if tensor.name in blobs:
        if tensor.data is not None:
            raise BadRequest(f"input {tensor.name!r} has both binary data and a JSON data array")
        elements: list[Any] = split_bytes(blobs[tensor.name], tensor.name)
    elif tensor.data is None:
        raise BadRequest(f"input {tensor.name!r} has no data (a JSON data array or binary_data_size)")
    else:
        elements = _flatten(tensor.data)
        if not all(isinstance(e, str) for e in elements):
            raise BadRequest(f"input {tensor.name!r}: BYTES elements in JSON must be strings"
                             + (" (base64 for an image)" if spec.kind == "image" else ""))
        if spec.kind == "image":
            elements = [_b64decode(e, tensor.name) for e in elements]
    if any(d < 0 for d in tensor.shape) or math.prod(tensor.shape) != len(elements):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} does not match its {len(elements)} elements")
    if tensor.shape and any(d != 1 for d in tensor.shape[1:]):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape}: one element per batch item, as [N] or [N, 1]")
    return elements


def _b64decode(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"input {name!r}: an image in a JSON data array must be base64 "
                         "(or send it as binary data)") from None


def _text(value: bytes | str, name: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"input {name!r} must be UTF-8 text") from None


def items_of(request: InferRequest, blobs: Mapping[str, bytes], signature: Signature, model: str,
             max_batch: int) -> list[dict[str, Any]]:
    """One ``{tensor name: str or bytes}`` per batch item; every input is checked against the signature."""
    given: dict[str, list[bytes | str]] = {}
    for tensor in request.inputs:
        spec = signature.input(tensor.name)
        if spec is None:
            names = ", ".join(t.name for t in signature.inputs)
            raise BadRequest(f"model {model!r} has no input {tensor.name!r}; its inputs are {names}")
        if tensor.name in given:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        given[tensor.name] = _elements(tensor, spec, blobs)
    missing = [t.name for t in signature.inputs if not t.optional and t.name not in given]
    if missing:
        raise BadRequest(f"model {model!r} needs the input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    sizes = {name: len(values) for name, values in given.items()}
    if len(set(sizes.values())) != 1:
        raise BadRequest("every input needs one element per batch item; got " +
                         ", ".join(f"{n}: {s}" for n, s in sizes.items()))
    n = next(iter(sizes.values()))
    if n == 0:
        raise BadRequest("the batch is empty: send at least one element per input")
    if n > max_batch:
        raise BadRequest(f"a call carries at most {max_batch} items (LOOPLINE_GATEWAY_OIP_MAX_BATCH); this one has {n}")
    items: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, values in given.items():
        spec = signature.input(name)
        assert spec is not None
        for item, value in zip(items, values, strict=True):
            item[name] = value if spec.kind == "image" else _text(value, name)
    return items


def wanted_outputs(request: InferRequest, signature: Signature, model: str) -> list[tuple[TensorSpec, bool]]:
    """The outputs to return, each with whether it goes as binary data (``binary_data`` on the
    output, else the request's ``binary_data_output``, else JSON)."""
    default = bool((request.parameters or {}).get("binary_data_output", False))
    if not request.outputs:
        return [(spec, default) for spec in signature.outputs]
    out = []
    for requested in request.outputs:
        spec = signature.output(requested.name)
        if spec is None:
            names = ", ".join(t.name for t in signature.outputs)
            raise BadRequest(f"model {model!r} has no output {requested.name!r}; its outputs are {names}")
        out.append((spec, bool((requested.parameters or {}).get("binary_data", default))))
    return out


def _binary(spec: TensorSpec, values: list[Any]) -> bytes:
    if spec.datatype == "FP32":
        return np.asarray(values, dtype="<f4").tobytes()
    if spec.datatype == "INT64":
        return np.asarray(values, dtype="<i8").tobytes()
    raw = [base64.b64decode(v) if spec.kind == "image" else str(v).encode("utf-8") for v in values]
    return b"".join(struct.pack("<I", len(r)) + r for r in raw)


def _json_values(spec: TensorSpec, values: list[Any]) -> list[Any]:
    if spec.datatype == "FP32":
        return [float(v) for v in values]
    if spec.datatype == "INT64":
        return [int(v) for v in values]
    return [str(v) for v in values]  # an image stays base64 text in JSON


def encode_response(*, model: str, version: str | None, request_id: str, results: list[dict[str, Any]],
                    outputs: list[tuple[TensorSpec, bool]],
                    parameters: Parameters | None = None) -> tuple[bytes, dict[str, str]]:
    """The response body and its content headers."""
    described, blobs = [], []
    for spec, binary in outputs:
        values = [result.get(spec.field) for result in results]
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": [len(values)]}
        if binary:
            blob = _binary(spec, values)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_values(spec, values)
        described.append(tensor)
    body: dict[str, Any] = {"model_name": model, **({"model_version": version} if version is not None else {}),
                            "id": request_id, "outputs": described}
    if parameters:
        body["parameters"] = parameters
    header = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
