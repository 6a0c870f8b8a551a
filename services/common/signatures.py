"""A model family's Open Inference Protocol signature: its named input and output tensors.

Each family declares its own in its registration (``Task.signature``), torch-free so the gateway
reads it: the gateway's ``/v2`` routes, model metadata and tensor codec, the ``/v1`` route's
fields and the browser UI's panel are all derived from it. A tensor maps to a field of the task's
JSON request or answer (the ``/v1`` contract); ``kind`` says how its BYTES elements travel:

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

    def of_kind(self, kind: Kind) -> TensorSpec | None:
        """The first input of this kind (e.g. the variant a request names), or None."""
        return next((t for t in self.inputs if t.kind == kind), None)
