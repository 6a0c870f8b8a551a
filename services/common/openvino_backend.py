"""An encoder served by OpenVINO instead of torch: converted in memory at load, same inputs and outputs.

Used by the QA runtime (``LOOPLINE_QA_BACKEND=openvino``) and by the bench's anchors
(``harness/bench/anchors.py``), so both time and serve the same conversion. Install with
``pip install 'loopline[openvino]'``.

Precision: OpenVINO's CPU plugin runs bf16 by default on CPUs with native bf16 (AVX512_BF16 or
AMX); ``compile_encoder(..., bf16=False)`` asks for f32 (``INFERENCE_PRECISION_HINT``). The
caller decides with the same answer-agreement guard as torch bf16 (docs/performance.md).

Converting (tracing the torch model) is the slow part of a load (about 20 s for BLIP-base on two
cores), so ``convert_cached`` keeps each conversion in a cache directory (the runtimes use
``<registry>/.openvino-cache``): one directory per converted network, written under a temporary
name and renamed into place, with the sha256 of its files; a load that finds a complete entry whose
files match reads it instead of converting, and an entry that does not match is removed and
converted again.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .registry import sha256_file, temp_writer

log = logging.getLogger("loopline.openvino")
CACHED_FILES = ("model.xml", "model.bin")
# entries kept per network of a task (production, a canary and a rollback target), the most
# recently used first; older ones are removed when a new one is written (BLIP: 1.2 GB each)
KEEP_PER_NETWORK = 3


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


def convert_cached(module: Any, example: Sequence[Any], entry: Path | None) -> Any:
    """``convert(module, example)``, kept in the directory ``entry`` (None: no cache). ``entry``'s
    name must identify everything the conversion depends on (weights, code, library versions):
    a complete entry is never rewritten. Failing to read or write the cache never fails the load."""
    if entry is None:
        return convert(module, example)
    found = read_cached(entry)
    if found is not None:
        return found
    model = convert(module, example)
    write_cached(entry, model)
    return model


def read_cached(entry: Path) -> Any:
    """The OpenVINO model kept in ``entry``, or None when there is none or it does not match its sha256
    (then the entry is removed, to be written again)."""
    import openvino as ov

    digests = entry / "sha256.json"
    if not digests.is_file():
        return None
    try:
        expected = json.loads(digests.read_text())
        for name in CACHED_FILES:
            if sha256_file(entry / name) != expected[name]:
                raise ValueError(f"{name} does not match its sha256")
        model = ov.Core().read_model(str(entry / "model.xml"))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("the converted model in %s is unusable (%s); converting again", entry, exc)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    try:
        os.utime(digests)  # most recently used: kept by prune()
    except OSError:
        pass
    log.info("OpenVINO model read from the conversion cache: %s", entry)
    return model


def prune(root: Path, prefix: str, keep: int = KEEP_PER_NETWORK) -> list[Path]:
    """Remove all but the ``keep`` most recently used complete entries named ``prefix``* in ``root``."""
    entries = [p for p in root.glob(f"{prefix}*") if (p / "sha256.json").is_file()]
    entries.sort(key=lambda p: (p / "sha256.json").stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return entries[keep:]


def write_cached(entry: Path, model: Any) -> None:
    """Keep ``model`` in ``entry``: saved under a temporary name (``.tmp-*``, which the registry's
    ``clean_partial`` removes only once its writer is gone), then renamed into place; another writer that got
    there first wins."""
    import openvino as ov

    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with temp_writer(tmp):  # clean_partial in another pod leaves a live conversion alone
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "sha256.json").write_text(json.dumps({n: sha256_file(tmp / n) for n in CACHED_FILES}))
            try:
                os.rename(tmp, entry)
            except OSError:
                if not (entry / "sha256.json").is_file():  # not a concurrent writer that finished first
                    raise
            removed = prune(entry.parent, entry.name.rsplit("-", 1)[0] + "-")
            if removed:
                log.info("removed %d older conversion(s) from the cache: %s", len(removed), [p.name for p in removed])
    except (OSError, RuntimeError) as exc:
        log.warning("could not keep the converted model in %s (%s); the next load converts again", entry, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compile_encoder(ov_model: Any, names: Sequence[str], threads: int, bf16: bool | None) -> CompiledEncoder:
    """Compile for the CPU with ``threads`` inference threads, latency-oriented. ``bf16``: True asks
    for bf16, False for f32, None leaves OpenVINO's default (bf16 where the CPU has it)."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if bf16 is not None:
        config["INFERENCE_PRECISION_HINT"] = "bf16" if bf16 else "f32"
    return CompiledEncoder(ov.Core().compile_model(ov_model, "CPU", config), names)
