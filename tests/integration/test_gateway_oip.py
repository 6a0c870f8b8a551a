"""The Open Inference Protocol v2 on the gateway, through the real clients: Triton's
``tritonclient.http`` (in the project's environment) and the ``kserve`` SDK's REST client (in the
bench's KServe overlay environment, harness/bench/peers/envs.py). Shares test_gateway.py's stack."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from services.common.registry import Registry
from tests.fixtures import copy_as_new_version, inference_rows

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CONTEXT = "France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower."


@pytest.fixture(scope="module")
def stack(gateway_stack):
    return gateway_stack


@pytest.fixture(scope="module")
def client(stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(stack.url.removeprefix("http://"), network_timeout=120.0)


def text_input(name: str, values: list[str], binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=np.object_), binary_data=binary)
    return tensor


def image_input(name: str, images: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput(name, [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    return tensor


def sample(stack, name: str) -> bytes:
    return (stack.data / "samples" / "images" / name).read_bytes()


def test_server_and_model_metadata_list_and_ready(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "loopline" and "binary_tensor_data" in server["extensions"]
    index = {(m["name"], m["version"], m["state"]) for m in client.get_model_repository_index()}
    assert {("vqa-blip", "1", "READY"), ("qa-extractive", "1", "READY"), ("style-mosaic", "1", "READY"),
            ("style-sketch", "1", "READY")} <= index

    signatures = {"vqa-blip": ({"question", "image"}, {"answer", "confidence"}),
                  "qa-extractive": ({"question", "context"}, {"answer", "confidence", "start", "end"}),
                  "style-mosaic": ({"image", "style"}, {"image"})}
    for model, (inputs, outputs) in signatures.items():
        meta = client.get_model_metadata(model)
        assert meta["name"] == model and "1" in meta["versions"]
        assert {t["name"] for t in meta["inputs"]} == inputs and {t["name"] for t in meta["outputs"]} == outputs
        assert all(t["shape"] == [-1] for t in meta["inputs"] + meta["outputs"])
        assert client.get_model_metadata(model, "1")["versions"] == ["1"]
        assert client.is_model_ready(model) and client.is_model_ready(model, "1")
    qa_types = {t["name"]: t["datatype"] for t in client.get_model_metadata("qa-extractive")["outputs"]}
    assert qa_types == {"answer": "BYTES", "confidence": "FP32", "start": "INT64", "end": "INT64"}
    assert not client.is_model_ready("qa-extractive", "99")
    assert not client.is_model_ready("no-such-model")
    with pytest.raises(InferenceServerException, match="unknown model 'no-such-model'"):
        client.get_model_metadata("no-such-model")
    with pytest.raises(InferenceServerException, match="has no version 99"):
        client.get_model_metadata("qa-extractive", "99")


def test_qa_batch_binary_and_json_agree_with_v1_and_leave_events(stack, client: triton.InferenceServerClient) -> None:
    questions = ["What is the capital of France?", "Where is France?", "What is Paris known for?"]
    contexts = [CONTEXT] * 3
    binary = client.infer("qa-extractive", [text_input("question", questions), text_input("context", contexts)],
                          request_id="oip-qa-batch")
    answers = [a.decode() for a in binary.as_numpy("answer")]
    assert binary.get_response()["id"] == "oip-qa-batch" and binary.get_response()["model_version"] == "1"
    starts, ends = binary.as_numpy("start"), binary.as_numpy("end")
    assert binary.as_numpy("confidence").dtype == np.float32 and starts.dtype == np.int64
    for i, question in enumerate(questions):
        v1 = httpx.post(stack.url + "/v1/qa", json={"question": question, "context": CONTEXT}).json()
        assert (answers[i], int(starts[i]), int(ends[i])) == (v1["answer"], v1["start"], v1["end"])
        assert CONTEXT[int(starts[i]):int(ends[i])] == answers[i]

    as_json = client.infer("qa-extractive", [text_input("question", questions[:1], binary=False),
                                             text_input("context", contexts[:1], binary=False)],
                           outputs=[triton.InferRequestedOutput("answer", binary_data=False)])
    assert as_json.get_response()["outputs"][0]["data"] == answers[:1]
    assert [o["name"] for o in as_json.get_response()["outputs"]] == ["answer"]

    ids = [f"oip-qa-batch.{i}" for i in range(3)]
    rows = inference_rows(stack.data / "state" / "events.db", ids, "task, model, version, status, route, inputs")
    assert {rows[i][:4] for i in ids} == {("qa", "qa-extractive", 1, 200)}
    assert rows[ids[1]][4] == "/v2/models/qa-extractive/infer" and json.loads(rows[ids[1]][5])["question"] == questions[1]
    fb = httpx.post(stack.url + "/v1/feedback", json={"request_id": ids[2], "rating": "bad", "correction": "Paris"})
    assert fb.status_code == 201, fb.text
    single = client.infer("qa-extractive", [text_input("question", questions[:1]), text_input("context", contexts[:1])])
    request_id = single.get_response()["id"]
    assert request_id and httpx.post(stack.url + "/v1/feedback",
                                     json={"request_id": request_id, "rating": "good"}).status_code == 201


def test_vqa_and_style_with_image_bytes(stack, client: triton.InferenceServerClient) -> None:
    images = [sample(stack, "red_square.png"), sample(stack, "blue_circle.jpg")]
    vqa = client.infer("vqa-blip", [text_input("question", ["what shape?", "what colour?"]),
                                    image_input("image", images)], request_id="oip-vqa")
    assert len(vqa.as_numpy("answer")) == 2 and all(vqa.as_numpy("answer"))
    v1 = httpx.post(stack.url + "/v1/vqa", files={"image": ("r.png", images[0], "image/png")},
                    data={"question": "what shape?"}, timeout=60).json()
    assert vqa.as_numpy("answer")[0].decode() == v1["answer"]
    rows = inference_rows(stack.data / "state" / "events.db", ["oip-vqa.0"], "inputs")
    assert "state/uploads/" in rows["oip-vqa.0"][0], "the image is kept for learning, as /v1/vqa keeps it"

    style = client.infer("style-sketch", [image_input("image", images[:1]), text_input("style", ["sketch"])])
    png = style.as_numpy("image")[0]
    assert Image.open(io.BytesIO(png)).format == "PNG"
    v1_png = httpx.post(stack.url + "/v1/style", json={"style": "sketch", "image_path": "samples/images/red_square.png"},
                        timeout=60).json()["image_b64"]
    assert Image.open(io.BytesIO(png)).size == Image.open(io.BytesIO(base64.b64decode(v1_png))).size
    as_json = httpx.post(stack.url + "/v2/models/style-mosaic/infer", timeout=60, json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(images[1]).decode()]}]})
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    out = as_json.json()["outputs"][0]
    assert out["name"] == "image" and Image.open(io.BytesIO(base64.b64decode(out["data"][0]))).format == "PNG"


def backend_batches(stack, model: str) -> tuple[float, float]:
    text = httpx.get(stack.backends["qa"].url + "/metrics").text
    values = {}
    for suffix in ("count", "sum"):
        match = re.search(rf'^loopline_batch_size_{suffix}{{model="{model}",version="1"}} (\S+)$', text, re.M)
        values[suffix] = float(match.group(1)) if match else 0.0
    return values["count"], values["sum"]


def test_a_batch_of_n_reaches_the_batcher_together(stack, client: triton.InferenceServerClient) -> None:
    n = 8
    before = backend_batches(stack, "qa-extractive")
    result = client.infer("qa-extractive", [text_input("question", [f"Question {i}: where is Paris?" for i in range(n)]),
                                            text_input("context", [CONTEXT] * n)])
    assert len(result.as_numpy("answer")) == n
    count, total = (a - b for a, b in zip(backend_batches(stack, "qa-extractive"), before, strict=True))
    assert total == n, "each item is one model input"
    assert count < n, f"{n} items took {count} model calls: they were not batched together"


def test_version_pinning_canary_and_errors(stack, client: triton.InferenceServerClient) -> None:
    registry = Registry(stack.data / "registry")
    pinned = str(copy_as_new_version(registry, "qa-extractive", 1).version)
    unserved = httpx.get(f"{stack.url}/v2/models/qa-extractive/versions/{pinned}/ready")
    assert unserved.status_code == 404 and "only its production and canary versions" in unserved.json()["error"]
    # served once it is an alias: a canary at weight 0 gets pinned calls only
    registry.promote("qa-extractive", int(pinned), "canary", 0.0, actor="test")
    inputs = [text_input("question", ["Where is France?"]), text_input("context", [CONTEXT])]
    deadline = time.monotonic() + 60
    while True:  # the backend loads a new version in the background
        try:
            result = client.infer("qa-extractive", inputs, model_version=pinned)
            break
        except InferenceServerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    assert result.get_response()["model_version"] == pinned and client.is_model_ready("qa-extractive", pinned)
    assert client.get_model_metadata("qa-extractive")["versions"] == ["1", pinned], "production, then the canary"
    assert client.infer("qa-extractive", inputs).get_response()["model_version"] == "1", "production still answers"
    registry.promote("qa-extractive", int(pinned), "canary", 1.0, actor="test")
    try:
        canary = client.infer("qa-extractive", inputs, headers={"X-Client-Id": "oip-user"})
        assert canary.get_response()["model_version"] == pinned, "unpinned calls follow the canary split as /v1 does"
    finally:
        registry.clear_canary("qa-extractive")

    cases = [
        (lambda: client.infer("nope", inputs), "404", "unknown model 'nope'"),
        (lambda: client.infer("qa-extractive", inputs, model_version="99"), "404", ""),
        (lambda: client.infer("qa-extractive", inputs, model_version="v2"), "400", "whole number"),
        (lambda: client.infer("qa-extractive", inputs[:1]), "400", "needs the input context"),
        (lambda: client.infer("style-mosaic", [image_input("image", [sample(stack, "red_square.png")]),
                                               text_input("style", ["sketch"])]), "400", "is the 'mosaic' style"),
        (lambda: client.infer("vqa-blip", [text_input("question", ["q"]), image_input("image", [b"not an image"])]),
         "415", ""),
    ]
    for call, status, message in cases:
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == status, caught.value
        assert message in caught.value.message() and caught.value.message()
    raw = httpx.post(stack.url + "/v2/models/qa-extractive/infer", content=b'{"inputs": [}')
    assert raw.status_code == 400 and isinstance(raw.json()["error"], str)
    gz = httpx.post(stack.url + "/v2/models/qa-extractive/infer", content=b"x", headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 415 and "uncompressed" in gz.json()["error"]


KSERVE_CLIENT = r'''
import asyncio, base64, json, sys
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

URL = sys.argv[1]
IMAGE = open(sys.argv[2], "rb").read()


def text(name, values, binary):
    tensor = InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=np.object_), binary_data=binary)
    return tensor


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=120))
    out = {"live": await client.is_server_live(URL), "ready": await client.is_server_ready(URL),
           "model_ready": await client.is_model_ready(URL, "qa-extractive")}
    for binary in (True, False):
        request = InferRequest("qa-extractive", [text("question", ["What is the capital of France?", "Where?"], binary),
                                                 text("context", [sys.argv[3]] * 2, binary)], request_id="kserve-qa")
        response = await client.infer(URL, request, model_name="qa-extractive")
        out[f"qa_binary_{binary}"] = {"id": response.id, "model": response.model_name,
                                      "answers": [a if isinstance(a, str) else a.decode()
                                                  for a in response.outputs[0].as_numpy().tolist()]}
    def image():  # a fresh input per request: to_rest() consumes the binary data
        tensor = InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([IMAGE], dtype=np.object_), binary_data=True)
        return tensor

    vqa = await client.infer(URL, InferRequest("vqa-blip", [text("question", ["what shape?"], True), image()]),
                             model_name="vqa-blip")
    out["vqa"] = [a if isinstance(a, str) else a.decode() for a in vqa.outputs[0].as_numpy().tolist()]
    as_json = await client.infer(URL, InferRequest("style-mosaic", [image()]), model_name="style-mosaic")
    # base64 text in a JSON answer: kserve 0.21's REST client decodes binary BYTES outputs as UTF-8,
    # so it cannot take a PNG as binary data (tritonclient can)
    out["style_json"] = as_json.outputs[0].as_numpy().tolist()[0][:12]
    binary = await client.infer(URL, InferRequest("qa-extractive", [text("question", ["Where?"], True),
                                                                    text("context", [sys.argv[3]], True)],
                                                  request_outputs=[RequestedOutput("answer", {"binary_data": True})]),
                                model_name="qa-extractive")
    out["answer_binary"] = [o.name for o in binary.outputs]
    try:
        await client.infer(URL, InferRequest("qa-extractive", [text("question", ["q"], False)]), model_name="qa-extractive")
    except Exception as exc:
        out["error"] = str(exc)
    await client.close()
    print(json.dumps(out))


asyncio.run(main())
'''


def test_the_kserve_sdk_client(stack, tmp_path: Path) -> None:
    """KServe's InferenceRESTClient (v2), run in the bench's KServe environment: the one `make bench`
    built, else the small overlay test_bench_peers.py builds at the same place (once)."""
    from harness.bench.peers.envs import ensure_env

    python = ensure_env("kserve", REPO / "bench" / "results" / "cache", progress=lambda msg: None, overlay=True)
    script = tmp_path / "kserve_client.py"
    script.write_text(KSERVE_CLIENT)
    done = subprocess.run([str(python), str(script), stack.url, str(stack.data / "samples" / "images" / "red_square.png"),
                           CONTEXT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["live"] is True and out["ready"] is True and out["model_ready"] is True
    for binary in (True, False):
        qa = out[f"qa_binary_{binary}"]
        assert qa["id"] == "kserve-qa" and qa["model"] == "qa-extractive" and len(qa["answers"]) == 2
    assert out["qa_binary_True"]["answers"] == out["qa_binary_False"]["answers"]
    v1 = httpx.post(stack.url + "/v1/qa", json={"question": "What is the capital of France?", "context": CONTEXT}).json()
    assert out["qa_binary_True"]["answers"][0] == v1["answer"]
    assert len(out["vqa"]) == 1 and out["vqa"][0]
    assert base64.b64decode(out["style_json"])[:4] == b"\x89PNG", "an image in JSON is base64"
    assert out["answer_binary"] == ["answer"], "only the requested output, as binary data"
    assert "needs the input context" in out["error"] and "400" in out["error"]
