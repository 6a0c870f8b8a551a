"""The echo family's registration (entry point ``loopline.families: echo``)."""

from __future__ import annotations

from services.common.signatures import Signature, TensorSpec
from services.common.tasks import Task

from .schemas import NAME, EchoInput, EchoResponse

FAMILY = Task(
    name=NAME, summary="echo (a test family)", default_port=8199,
    package=__package__, framework="python", request=EchoInput, response=EchoResponse,
    signature=Signature(inputs=(TensorSpec("text", "BYTES", "text"),),
                        outputs=(TensorSpec("answer", "BYTES", "answer"),
                                 TensorSpec("confidence", "FP32", "confidence", "number"))),
    metric=("accuracy", "higher"), tiny_builder="loopline_echo.runtime:build_tiny",
    tiny_models={"echo-tiny": {}}, event_output=("answer",), default_model="echo-tiny",
    ui={"title": "Echo a text", "button": "Echo", "correction": "The right answer"},
)
