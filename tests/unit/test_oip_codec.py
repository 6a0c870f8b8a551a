"""The Open Inference Protocol codec: JSON and binary tensors in, per-item fields, answers out."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from services.common.errors import BadRequest, NotFound
from services.common.tasks import TASKS, signature_of
from services.gateway.oip_codec import (
    HEADER_LENGTH,
    encode_response,
    items_of,
    parse_request,
    split_bytes,
    wanted_outputs,
)

pytestmark = pytest.mark.unit
QA = signature_of("qa")
VQA = signature_of("vqa")
STYLE = signature_of("style")


def bytes_tensor(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_body(header: dict, *blobs: bytes) -> tuple[bytes, str]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), str(len(head))


def test_every_task_declares_a_signature_with_its_request_fields() -> None:
    for task in TASKS.values():
        signature = task.signature
        assert signature.inputs and signature.outputs, task.name
        assert len({t.name for t in signature.inputs}) == len(signature.inputs)
        request_fields = set(task.request.model_fields)
        for spec in signature.inputs:  # every tensor is a field of the family's /v1 request
            assert spec.field in request_fields or (spec.kind == "image" and "image_b64" in request_fields), spec
    with pytest.raises(NotFound, match="unknown task 'speech'"):
        signature_of("speech")


def test_json_tensors_give_one_field_dict_per_item() -> None:
    request, blobs = parse_request(json.dumps({"inputs": [
        {"name": "question", "datatype": "BYTES", "shape": [2, 1], "data": [["Who?"], ["When?"]]},
        {"name": "context", "datatype": "BYTES", "shape": [2], "data": ["Ada wrote it.", "In 1843."]},
    ]}).encode(), None)
    assert blobs == {}
    assert items_of(request, blobs, QA, "qa-extractive", 8) == [
        {"question": "Who?", "context": "Ada wrote it."}, {"question": "When?", "context": "In 1843."}]


def test_binary_tensors_follow_the_json_header_in_input_order() -> None:
    image = b"\x89PNG\r\n\x1a\n-not-really"
    questions = bytes_tensor(b"what shape?", b"what colour?")
    images = bytes_tensor(image, image)
    body, length = binary_body({"inputs": [
        {"name": "question", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(questions)}},
        {"name": "image", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(images)}},
    ]}, questions, images)
    request, blobs = parse_request(body, length)
    items = items_of(request, blobs, VQA, "vqa-blip", 8)
    assert items == [{"question": "what shape?", "image": image}, {"question": "what colour?", "image": image}]


def test_an_image_in_json_data_is_base64() -> None:
    request, blobs = parse_request(json.dumps({"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(b"img").decode()]},
    ]}).encode(), None)
    assert items_of(request, blobs, STYLE, "style-mosaic", 8) == [{"image": b"img"}]
    request, blobs = parse_request(json.dumps({"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["not base64!"]}]}).encode(), None)
    with pytest.raises(BadRequest, match="must be base64"):
        items_of(request, blobs, STYLE, "style-mosaic", 8)


@pytest.mark.parametrize(("inputs", "message"), [
    ([{"name": "question", "datatype": "BYTES", "shape": [1], "data": ["q"]}], "needs the input context"),
    ([{"name": "question", "datatype": "FP32", "shape": [1], "data": [1.0]},
      {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["c"]}], "must be BYTES, not FP32"),
    ([{"name": "query", "datatype": "BYTES", "shape": [1], "data": ["q"]}], "has no input 'query'; its inputs are"),
    ([{"name": "question", "datatype": "BYTES", "shape": [3], "data": ["a", "b"]},
      {"name": "context", "datatype": "BYTES", "shape": [2], "data": ["c", "d"]}], "does not match its 2 elements"),
    ([{"name": "question", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]},
      {"name": "context", "datatype": "BYTES", "shape": [1, 2], "data": ["c", "d"]}], "one element per batch item"),
    ([{"name": "question", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
      {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["c"]}], "one element per batch item; got"),
    ([{"name": "question", "datatype": "BYTES", "shape": [0], "data": []},
      {"name": "context", "datatype": "BYTES", "shape": [0], "data": []}], "the batch is empty"),
    ([{"name": "question", "datatype": "BYTES", "shape": [1], "data": [7]},
      {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["c"]}], "must be strings"),
    ([{"name": "question", "datatype": "BYTES", "shape": [1]},
      {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["c"]}], "has no data"),
])
def test_bad_tensors_are_400_with_a_sentence(inputs: list, message: str) -> None:
    request, blobs = parse_request(json.dumps({"inputs": inputs}).encode(), None)
    with pytest.raises(BadRequest, match=message):
        items_of(request, blobs, QA, "qa-extractive", 8)


def test_a_batch_above_the_limit_is_refused() -> None:
    request, blobs = parse_request(json.dumps({"inputs": [
        {"name": "question", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "c"]},
        {"name": "context", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "c"]}]}).encode(), None)
    with pytest.raises(BadRequest, match="at most 2 items .*LOOPLINE_GATEWAY_OIP_MAX_BATCH"):
        items_of(request, blobs, QA, "qa-extractive", 2)


@pytest.mark.parametrize(("body", "length", "message"), [
    (b"{}", "x", "whole number of bytes"),
    (b"{}", "0", "raw binary request"),
    (b"{}", "99", "says 99 bytes but the body holds 2"),
    (b"{not json", None, "not valid JSON"),
    (b"[]", None, "must be a JSON object"),
    (b'{"inputs": []}', None, "inputs"),
])
def test_broken_bodies_are_400(body: bytes, length: str | None, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(body, length)


def test_binary_sizes_must_account_for_every_byte() -> None:
    blob = bytes_tensor(b"q")
    header = {"inputs": [{"name": "question", "datatype": "BYTES", "shape": [1],
                          "parameters": {"binary_data_size": len(blob) + 4}}]}
    with pytest.raises(BadRequest, match="runs past the end of the body"):
        parse_request(*binary_body(header, blob))
    header["inputs"][0]["parameters"]["binary_data_size"] = len(blob)
    with pytest.raises(BadRequest, match="3 bytes after the tensors' binary data"):
        parse_request(*binary_body(header, blob, b"xyz"))
    with pytest.raises(BadRequest, match="runs past its binary data"):
        split_bytes(struct.pack("<I", 10) + b"abc", "question")
    with pytest.raises(BadRequest, match="inside an element's 4-byte length"):
        split_bytes(b"\x01\x00", "question")


def test_outputs_as_json_or_binary_as_requested() -> None:
    results = [{"answer": "Ada", "confidence": 0.5, "start": 0, "end": 3},
               {"answer": "1843", "confidence": 0.25, "start": 3, "end": 7}]
    request, _ = parse_request(json.dumps({"inputs": [{"name": "question", "datatype": "BYTES", "shape": [1],
                                                       "data": ["q"]}],
                                           "outputs": [{"name": "answer", "parameters": {"binary_data": True}},
                                                       {"name": "start"}]}).encode(), None)
    outputs = wanted_outputs(request, QA, "qa-extractive")
    body, headers = encode_response(model="qa-extractive", version="1", request_id="r1", results=results,
                                    outputs=outputs)
    length = int(headers[HEADER_LENGTH])
    head = json.loads(body[:length])
    assert head["id"] == "r1" and head["model_version"] == "1" and headers["content-type"] == "application/octet-stream"
    answer, start = head["outputs"]
    assert start == {"name": "start", "datatype": "INT64", "shape": [2], "data": [0, 3]}
    assert split_bytes(body[length:length + answer["parameters"]["binary_data_size"]], "answer") == [b"Ada", b"1843"]
    assert length + answer["parameters"]["binary_data_size"] == len(body)

    everything, _ = parse_request(b'{"inputs": [{"name": "q", "datatype": "BYTES", "shape": [0], "data": []}],'
                                  b' "parameters": {"binary_data_output": true}}', None)
    body, headers = encode_response(model="qa-extractive", version=None, request_id="r2", results=results,
                                    outputs=wanted_outputs(everything, QA, "qa-extractive"))
    length = int(headers[HEADER_LENGTH])
    head = json.loads(body[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert [o["name"] for o in head["outputs"]] == ["answer", "confidence", "start", "end"] and "model_version" not in head
    confidence = np.frombuffer(body[length + sizes[0]:length + sizes[0] + sizes[1]], dtype="<f4")
    assert confidence.tolist() == [0.5, 0.25]
    with pytest.raises(BadRequest, match="has no output 'logits'"):
        bad, _ = parse_request(b'{"inputs": [{"name": "q", "datatype": "BYTES", "shape": [0]}],'
                               b' "outputs": [{"name": "logits"}]}', None)
        wanted_outputs(bad, QA, "qa-extractive")


def test_an_image_output_is_raw_png_in_binary_and_base64_in_json() -> None:
    png = b"\x89PNG\r\n\x1a\nrest"
    results = [{"image_b64": base64.b64encode(png).decode()}]
    request, _ = parse_request(b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [0]}]}', None)
    body, headers = encode_response(model="style-mosaic", version="1", request_id="r", results=results,
                                    outputs=wanted_outputs(request, STYLE, "style-mosaic"))
    assert headers == {"content-type": "application/json"}
    assert json.loads(body)["outputs"][0]["data"] == [results[0]["image_b64"]]
    body, headers = encode_response(model="style-mosaic", version="1", request_id="r", results=results,
                                    outputs=[(STYLE.outputs[0], True)])
    assert split_bytes(body[int(headers[HEADER_LENGTH]):], "image") == [png]


def test_admission_sheds_v2_infer_calls_by_their_models_task_with_a_plain_error() -> None:
    """A /v2 infer call shares its model's task budget; past it, 503 in the protocol's error shape."""
    import asyncio

    from services.common.admission import AdmissionMiddleware

    release = asyncio.Event()
    sent: list[dict] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        await release.wait()

    async def record(message: dict) -> None:
        sent.append(message)

    def resolve(path: str) -> str | None:
        return {"/v2/models/qa-extractive/infer": "qa"}.get(path)

    async def run() -> None:
        door = AdmissionMiddleware(app, {"/v1/qa": "qa"}, max_inflight=1, resolve=resolve, plain_error_prefix="/v2/")
        scope = {"type": "http", "method": "POST", "path": "/v1/qa", "state": {}}
        held = asyncio.create_task(door(scope, None, record))
        await asyncio.sleep(0)  # let the first call take the only slot
        await door({**scope, "path": "/v2/models/qa-extractive/infer"}, None, record)
        release.set()
        await held
        await door({**scope, "path": "/v2/models/unknown/infer"}, None, record)  # no group: reaches the app

    asyncio.run(run())
    start, body = sent[0], json.loads(sent[1]["body"])
    assert start["status"] == 503 and (b"retry-after", b"1") in start["headers"]
    assert body == {"error": "at capacity for qa (1 requests in flight); retry shortly"}
    assert len(sent) == 2, "the unknown model's call was not shed"


def test_deeply_nested_json_data_is_flattened_without_recursion() -> None:
    depth = 900
    data = json.loads("[" * depth + '"Who?"' + "]" * depth)
    request, blobs = parse_request(json.dumps({"inputs": [
        {"name": "question", "datatype": "BYTES", "shape": [1], "data": data},
        {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["Ada wrote it."]}]}).encode(), None)
    assert items_of(request, blobs, QA, "qa-extractive", 8) == [{"question": "Who?", "context": "Ada wrote it."}]
