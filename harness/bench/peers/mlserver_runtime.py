"""MLServer custom inference runtimes serving the bench's QA and VQA models.

Configured as MLServer's docs recommend: a custom runtime (``MLModel`` with async ``load``
and ``predict``, "Custom Inference Runtimes", https://docs.seldon.ai/mlserver/user-guide/custom),
adaptive batching on through ``max_batch_size`` / ``max_batch_time`` in model-settings.json
("Adaptive Batching", https://docs.seldon.ai/mlserver/user-guide/adaptive-batching) and the
model in MLServer's parallel inference pool (``parallel_workers`` in settings.json, "Parallel
Inference", https://docs.seldon.ai/mlserver/user-guide/parallel-inference), so the event
loop that batches never runs the model. ``write_config`` writes both files.

MLServer's HuggingFace runtime (``mlserver-huggingface``) would wrap transformers'
``question-answering`` pipeline, which transformers 5 removed and whose span rule differs
from Loopline's: the custom runtime is the way MLServer's docs give for a model whose
pre/post-processing is your own, and it answers with the same decoder. For VQA, the
HuggingFace runtime's ``visual-question-answering`` task is gone from transformers 5 as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

try:  # the bench imports write_config from the project's environment, where mlserver is absent
    from mlserver import MLModel
    from mlserver.codecs import StringCodec
    from mlserver.types import InferenceRequest, InferenceResponse
except ImportError:  # pragma: no cover
    MLModel = object


class QaRuntime(MLModel):  # type: ignore[misc,valid-type]
    async def load(self) -> bool:
        from qa_core import QaModel

        self.qa = QaModel(self.settings.parameters.uri)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        named = {i.name: StringCodec.decode_input(i) for i in payload.inputs}
        results = self.qa.predict(list(zip(named["question"], named["context"], strict=True)))
        return InferenceResponse(model_name=self.name, outputs=[
            StringCodec.encode_output("answer", [r["answer"] for r in results]),
            StringCodec.encode_output("result", [json.dumps(r) for r in results])])


class VqaRuntime(MLModel):  # type: ignore[misc,valid-type]
    async def load(self) -> bool:
        from vqa_core import VqaModel

        self.vqa = VqaModel(self.settings.parameters.uri)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        named = {i.name: StringCodec.decode_input(i) for i in payload.inputs}
        results = self.vqa.predict(list(zip(named["image_b64"], named["question"], strict=True)))
        return InferenceResponse(model_name=self.name, outputs=[
            StringCodec.encode_output("answer", [r["answer"] for r in results]),
            StringCodec.encode_output("result", [json.dumps(r) for r in results])])


RUNTIMES = {"qa": "mlserver_runtime.QaRuntime", "vqa": "mlserver_runtime.VqaRuntime"}
# the request fields each task sends, as one BYTES tensor each
FIELDS = {"qa": ("question", "context"), "vqa": ("question", "image_b64")}


def write_config(folder: Path, task: str, model_dir: Path, http_port: int, grpc_port: int, metrics_port: int,
                 workers: int, max_batch_size: int, max_batch_time_s: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({
        "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port, "host": "127.0.0.1",
        "parallel_workers": workers, "debug": False, "load_models_at_startup": True,
        # its multiprocess metrics files: beside the config, not in whatever directory the bench runs in
        "metrics_dir": str(folder / ".metrics")}, indent=2))
    model = folder / task
    model.mkdir(exist_ok=True)
    (model / "model-settings.json").write_text(json.dumps({
        "name": task, "implementation": RUNTIMES[task],
        "max_batch_size": max_batch_size, "max_batch_time": max_batch_time_s,
        "parameters": {"uri": str(model_dir)}}, indent=2))


def infer_body(task: str, request: dict[str, Any]) -> dict[str, Any]:
    """Loopline's request for ``task`` as an Open Inference Protocol v2 request: one BYTES tensor per field."""
    return {"inputs": [{"name": name, "shape": [1], "datatype": "BYTES", "data": [request[name]]}
                       for name in FIELDS[task]]}
