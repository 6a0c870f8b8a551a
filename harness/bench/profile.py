"""Where a single request's time goes (``loopline bench --profile``).

Two views of the c=1 direct cell of every workload:

- **service stages**, from the kernel's Prometheus histograms scraped before and after the
  cell: prepare (body decode, image decode/preprocess or question check, on a prep thread),
  queue wait (submit -> batch start), model (``predict`` on the model thread), and what is
  left of the client's latency: HTTP, JSON parse and validation, response serialisation;
- **inside predict**, timed in-process on the runtime the service builds from the same
  settings: VQA vision encoder vs generation steps + confidence + decode; QA tokenizing vs
  the encoder forward vs span search; style network vs PNG encode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

STAGE_METRICS = {"prepare": "loopline_prepare_seconds", "queue_wait": "loopline_queue_wait_seconds",
                 "model": "loopline_batch_seconds", "service": "loopline_request_latency_seconds"}


def scrape_stages(url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each stage histogram over every model the service serves."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out = {stage: [0.0, 0.0] for stage in STAGE_METRICS}
    for line in text.splitlines():
        for stage, metric in STAGE_METRICS.items():
            if line.startswith(metric + "_sum"):
                out[stage][0] += float(line.rsplit(" ", 1)[1])
            elif line.startswith(metric + "_count"):
                out[stage][1] += float(line.rsplit(" ", 1)[1])
    return {k: (v[0], v[1]) for k, v in out.items()}


def stage_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
                client_mean_ms: float | None) -> dict[str, float | None]:
    """Mean milliseconds per request of each stage between two scrapes, plus the HTTP/JSON remainder."""
    means: dict[str, float | None] = {}
    for stage in STAGE_METRICS:
        total = after.get(stage, (0.0, 0.0))[0] - before.get(stage, (0.0, 0.0))[0]
        count = after.get(stage, (0.0, 0.0))[1] - before.get(stage, (0.0, 0.0))[1]
        means[f"{stage}_ms"] = round(1000 * total / count, 2) if count > 0 else None
    service = means.get("service_ms")
    means["client_ms"] = client_mean_ms
    means["http_json_ms"] = (round(client_mean_ms - service, 2)
                             if client_mean_ms is not None and service is not None else None)
    return means


def _timed(fn: Any, repeats: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2), out


def inside_predict(task: str, version_dir: Path, settings: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Best-of-3 milliseconds of the parts of one batch-1 ``predict``."""
    from services.common.tasks import get_task

    from .efficiency import backend_of

    runtime = get_task(task).runtime_class()(settings, Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    try:
        prep_ms, item = _timed(lambda: runtime.prepare(runtime.request_model(**body)))
        runtime.predict([item])  # warm
        total_ms, _ = _timed(lambda: runtime.predict([item]))
        parts: dict[str, Any] = {"precision": "bf16" if getattr(runtime, "precision", None) and runtime.precision.bf16
                                 else "fp32", "backend": backend_of(runtime), "prepare_ms": prep_ms,
                                 "predict_ms": total_ms}
        if task == "vqa":
            model, engine = runtime.shared.model, runtime.backend
            if engine is not None:  # OpenVINO serves (backend=auto, fp32): its vision encoder
                pixels = item[0].numpy()
                enc_ms, _ = _timed(lambda: engine.parts[0]({"pixel_values": pixels}))
            else:
                with runtime.inference():
                    enc_ms, _ = _timed(lambda: model.vision_model(pixel_values=item[0]))
            parts.update({"vision_encoder_ms": enc_ms, "generation_confidence_decode_ms": round(total_ms - enc_ms, 2)})
        elif task == "qa":
            question, context = item
            tok_ms, enc = _timed(lambda: runtime.tokenizer([question], [context], truncation="only_second",
                                                           max_length=runtime.max_len, stride=runtime.stride,
                                                           return_overflowing_tokens=True, return_offsets_mapping=True,
                                                           padding="longest", return_tensors="pt"))
            inputs = {k: v for k, v in enc.items() if k in runtime.tokenizer.model_input_names}
            fwd_ms, _ = _timed(lambda: runtime._logits(inputs))
            parts.update({"tokenize_ms": tok_ms, "encoder_forward_ms": fwd_ms,
                          "span_search_postprocess_ms": round(total_ms - tok_ms - fwd_ms, 2)})
        else:
            import numpy as np

            from services.common.images import encode_png

            net_ms, out = _timed(lambda: runtime._call(item[None]).numpy())
            from PIL import Image
            png_ms, _ = _timed(lambda: encode_png(Image.fromarray(np.clip(out[0], 0, 255).astype(np.uint8))))
            parts.update({"network_ms": net_ms, "png_encode_ms": png_ms})
        return parts
    finally:
        runtime.unload()
