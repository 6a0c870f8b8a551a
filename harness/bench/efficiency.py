"""FLOPs per request and the fraction of the matmul peak the batched model components reach.

Runs in the benchmark process after the load cells (the servers are stopped, so nothing
competes), with each runtime built exactly as the service builds it from the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.common.settings import ServingSettings
from services.common.tasks import get_task

from .models import MODEL_OF_TASK
from .peak import best_seconds, count_flops, keras_conv_flops
from .workloads import Workload

COMPONENT_BATCH = 8


def task_settings(task: str, env: dict[str, str], threads: int) -> ServingSettings:
    """The service's settings as the benchmark starts it (``LOOPLINE_<TASK>_*`` from ``env``)."""
    prefix = f"LOOPLINE_{task.upper()}_"
    overrides: dict[str, Any] = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix)}
    overrides.update(num_threads=threads, warmup=False)
    return get_task(task).settings(**overrides)


def precision(runtime: Any) -> str:
    """The precision the runtime chose at load (see ``TorchRuntimeMixin.choose_precision``)."""
    choice = getattr(runtime, "precision", None)
    return "bf16" if choice is not None and choice.bf16 else "fp32"


def backend_of(runtime: Any) -> str:
    """What runs the model: ``openvino`` when the VQA or QA runtime loaded that backend, else
    ``torch`` (``keras`` for style)."""
    if getattr(runtime, "task", "") == "style":
        return "keras"
    return "openvino" if getattr(runtime, "backend", None) is not None else "torch"


def measure_efficiency(registry_dir: Path, cfg: Any, workloads: dict[str, list[Workload]],
                       peak: dict[str, float]) -> dict[str, Any]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    out: dict[str, Any] = {}
    try:
        for task in cfg.tasks:
            version_dir = Path(registry_dir) / MODEL_OF_TASK[task] / "1"
            settings = task_settings(task, cfg.service_env, cfg.threads)
            fn = {"vqa": _vqa, "qa": _qa, "style": _style}[task]
            out[task] = fn(version_dir, settings, workloads[task], peak)
    finally:
        torch.set_num_threads(previous)
    return out


def _fraction(flops: float, seconds: float, peak_gflops: float) -> dict[str, float]:
    gflops = flops / seconds / 1e9
    return {"seconds": round(seconds, 4), "gflops": round(gflops, 1), "fraction_of_peak": round(gflops / peak_gflops, 3)}


def _vqa(version_dir: Path, settings: ServingSettings, workloads: list[Workload], peak: dict[str, float]) -> dict[str, Any]:
    import torch

    from services.common.torch_shared import inference_context
    from services.vqa.runtime import VqaRequest, VqaRuntime

    runtime = VqaRuntime(settings, Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    try:
        prec, served_by = precision(runtime), runtime.backend
        item = runtime.prepare(VqaRequest(**workloads[0].body))
        runtime.backend = None  # FLOPs are counted on the torch model (the same arithmetic)
        try:
            per_request = count_flops(lambda: runtime.predict([item]))
        finally:
            runtime.backend = served_by
        vision = runtime.shared.model.vision_model  # type: ignore[union-attr]
        side = runtime.image_side
        px = torch.randn(COMPONENT_BATCH, 3, side, side)
        with inference_context(prec == "bf16"):
            one = count_flops(lambda: vision(pixel_values=px[:1]))
            if served_by is None:
                seconds = best_seconds(lambda: vision(pixel_values=px), repeats=2)
        if served_by is not None:  # timed on what serves: the OpenVINO vision encoder (backend=auto, fp32)
            pixels = px.numpy()
            seconds = best_seconds(lambda: served_by.parts[0]({"pixel_values": pixels}), repeats=2)
        return {"precision": prec, "backend": backend_of(runtime), "flops_per_request": {workloads[0].name: per_request},
                "component": {"name": f"vision encoder ({backend_of(runtime)}), batch {COMPONENT_BATCH}",
                              "flops": one * COMPONENT_BATCH,
                              **_fraction(one * COMPONENT_BATCH, seconds, peak[f"{prec}_gflops"])}}
    finally:
        runtime.unload()


def _qa(version_dir: Path, settings: ServingSettings, workloads: list[Workload], peak: dict[str, float]) -> dict[str, Any]:
    from services.common.torch_shared import inference_context
    from services.qa.runtime import QaRuntime

    runtime = QaRuntime(settings, Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    try:
        prec, served_by = precision(runtime), runtime.backend
        per_request = {}
        runtime.backend = None  # FLOPs are counted on the torch model (the same arithmetic)
        try:
            for w in workloads:
                item = runtime.prepare(runtime.request_model(**w.body))
                per_request[w.name] = count_flops(lambda item=item: runtime.predict([item]))
        finally:
            runtime.backend = served_by
        w = workloads[0]
        enc = runtime.tokenizer([w.body["question"]] * COMPONENT_BATCH, [w.body["context"]] * COMPONENT_BATCH,
                                truncation="only_second", max_length=runtime.max_len, padding="longest",
                                return_tensors="pt")
        inputs = {k: v for k, v in enc.items() if k in runtime.tokenizer.model_input_names}
        model = runtime.shared.model  # type: ignore[union-attr]
        with inference_context(prec == "bf16"):
            flops = count_flops(lambda: model(**inputs))
        # timed on what serves: torch, or the OpenVINO backend (backend=auto when torch is fp32)
        seconds = best_seconds(lambda: runtime._logits(inputs), repeats=3)
        return {"precision": prec, "backend": backend_of(runtime), "flops_per_request": per_request,
                "component": {"name": f"encoder forward ({backend_of(runtime)}), batch {COMPONENT_BATCH} x "
                                      f"{inputs['input_ids'].shape[1]} tokens",
                              "flops": flops, **_fraction(flops, seconds, peak[f"{prec}_gflops"])}}
    finally:
        runtime.unload()


def _style(version_dir: Path, settings: ServingSettings, workloads: list[Workload], peak: dict[str, float]) -> dict[str, Any]:
    import numpy as np

    from services.style.runtime import StyleRuntime

    runtime = StyleRuntime(settings, Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    image = runtime.prepare(runtime.request_model(**workloads[0].body))
    h, w = image.shape[0], image.shape[1]
    flops = keras_conv_flops(runtime.model, h, w)
    batch = np.stack([image] * 2)
    runtime._call(batch)
    seconds = best_seconds(lambda: runtime._call(batch), repeats=2, warmup=0)
    prec = precision(runtime)  # mixed_bfloat16 when the load-time check chose it
    return {"precision": prec, "flops_per_request": {workloads[0].name: flops},
            "component": {"name": f"TransformerNet, batch 2 x {w}x{h}", "flops": 2 * flops,
                          **_fraction(2 * flops, seconds, peak[f"{prec}_gflops"])}}
