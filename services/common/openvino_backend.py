"""An encoder served by OpenVINO instead of torch: converted in memory at load, same inputs and outputs.

Used by the QA runtime (``LOOPLINE_QA_BACKEND=openvino``) and by the bench's anchors
(``harness/bench/anchors.py``), so both time and serve the same conversion. Install with
``pip install 'loopline[openvino]'``.

Precision: OpenVINO's CPU plugin runs bf16 by default on CPUs with native bf16 (AVX512_BF16 or
AMX); ``compile_encoder(..., bf16=False)`` asks for f32 (``INFERENCE_PRECISION_HINT``). The
caller decides with the same answer-agreement guard as torch bf16 (docs/performance.md).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def outputs_of(inner: Any, names: Sequence[str], fields: Sequence[str]) -> Any:
    """A torch module taking the inputs ``names`` positionally and returning the output fields
    ``fields`` of ``inner`` as plain tensors: what tracing-based converters need."""
    import torch

    class OutputsOf(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            out = self.inner(**dict(zip(names, tensors, strict=True)))
            return tuple(getattr(out, f) for f in fields)

    return OutputsOf().eval()


class CompiledEncoder:
    """A compiled OpenVINO model and how it was compiled; call with ``{name: int64 array}``."""

    def __init__(self, compiled: Any, names: Sequence[str]) -> None:
        self.compiled = compiled
        self.names = list(names)
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        self.precision = "bf16" if "bf" in hint else "fp16" if "16" in hint else "fp32"

    def __call__(self, feed: dict[str, Any]) -> list[Any]:
        result = self.compiled([feed[n] for n in self.names])
        return [result[i] for i in range(len(self.compiled.outputs))]


def convert(module: Any, example: Sequence[Any]) -> Any:
    """``openvino.convert_model`` of a torch module traced on ``example`` (a tuple of tensors)."""
    import openvino as ov
    import torch

    with torch.inference_mode(False), torch.no_grad():
        return ov.convert_model(module, example_input=tuple(example))


def compile_encoder(ov_model: Any, names: Sequence[str], threads: int, bf16: bool | None) -> CompiledEncoder:
    """Compile for the CPU with ``threads`` inference threads, latency-oriented. ``bf16``: True asks
    for bf16, False for f32, None leaves OpenVINO's default (bf16 where the CPU has it)."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if bf16 is not None:
        config["INFERENCE_PRECISION_HINT"] = "bf16" if bf16 else "f32"
    return CompiledEncoder(ov.Core().compile_model(ov_model, "CPU", config), names)
