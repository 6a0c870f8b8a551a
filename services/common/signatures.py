"""Each model family's Open Inference Protocol signature: its named input and output tensors.

One declarative table beside the task table (``tasks.py``), keyed by the same task names, torch-
free so the gateway reads it: the gateway's ``/v2`` routes, model metadata and tensor codec are
all derived from it, and a test checks that every task in ``TASKS`` has one. A tensor maps to a
field of the task's JSON request or answer (the ``/v1`` contract); ``kind`` says how its BYTES
elements travel:

- ``text``: UTF-8 text;
- ``image``: an encoded image (JPEG/PNG/WebP in, PNG out); raw bytes in the binary tensor
  extension, base64 text in a JSON ``data`` array (JSON strings cannot hold raw bytes);
- ``variant``: the variant of a task that has one model per variant (the style of a ``style-*``
  model); optional, and when given it must name the model's own variant;
- ``number``: a numeric answer field (FP32 or INT64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .tasks import TASKS

Kind = Literal["text", "image", "variant", "number"]


@dataclass(frozen=True)
class TensorSpec:
    name: str  # the tensor's name in the protocol
    datatype: Literal["BYTES", "FP32", "INT64"]
    field: str  # the JSON field of the task's request (inputs) or answer (outputs)
    kind: Kind = "text"
    optional: bool = False


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


SIGNATURES: dict[str, Signature] = {
    "vqa": Signature(
        inputs=(TensorSpec("question", "BYTES", "question"), TensorSpec("image", "BYTES", "image_b64", "image")),
        outputs=(TensorSpec("answer", "BYTES", "answer"), TensorSpec("confidence", "FP32", "confidence", "number"))),
    "qa": Signature(
        inputs=(TensorSpec("question", "BYTES", "question"), TensorSpec("context", "BYTES", "context")),
        outputs=(TensorSpec("answer", "BYTES", "answer"), TensorSpec("confidence", "FP32", "confidence", "number"),
                 TensorSpec("start", "INT64", "start", "number"), TensorSpec("end", "INT64", "end", "number"))),
    "style": Signature(
        inputs=(TensorSpec("image", "BYTES", "image_b64", "image"),
                TensorSpec("style", "BYTES", "style", "variant", optional=True)),
        outputs=(TensorSpec("image", "BYTES", "image_b64", "image"),)),
}


def signature_of(task: str) -> Signature:
    try:
        return SIGNATURES[task]
    except KeyError:
        raise LookupError(f"task {task!r} declares no inference signature in services/common/signatures.py; "
                          f"the tasks are {', '.join(TASKS)}") from None
