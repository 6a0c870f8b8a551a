"""The naive baseline: how the seeds served models, in one FastAPI app.

One request at a time (the handler calls the model on the event loop, so requests
queue behind each other), no batching, fp32, default thread settings (torch uses every
core, as the services do). transformers 5 dropped the ``visual-question-answering`` and
``question-answering`` pipelines, so the handler does what those pipelines did: processor
+ ``generate`` + decode for VQA; tokenize into 384-token windows with stride 128 +
forward + best start/end span for QA. Style is a bare eager Keras model call and a
default-level PNG encode, as the seed's Flask app did.

Run with ``uvicorn harness.bench.naive:create_app --factory`` and
``LOOPLINE_BENCH_NAIVE_TASK`` / ``LOOPLINE_BENCH_NAIVE_MODEL_DIR``.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic_settings import BaseSettings, SettingsConfigDict


class NaiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_BENCH_NAIVE_", extra="ignore")

    task: Literal["vqa", "qa", "style"]
    model_dir: Path


def _image(body: dict[str, Any]) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(body["image_b64"]))).convert("RGB")


def vqa_handler(model_dir: Path) -> Any:
    import torch
    from transformers import BlipForQuestionAnswering, BlipProcessor

    model = BlipForQuestionAnswering.from_pretrained(model_dir).eval()
    processor = BlipProcessor.from_pretrained(model_dir)

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        inputs = processor(images=_image(body), text=body["question"], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=10)
        return {"answer": processor.decode(out[0], skip_special_tokens=True)}

    return handle


def qa_handler(model_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    max_len = min(384, tokenizer.model_max_length)

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        enc = tokenizer(body["question"], body["context"], truncation="only_second", max_length=max_len,
                        stride=min(128, max_len // 4), return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding="longest", return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        enc.pop("overflow_to_sample_mapping")
        inputs = {k: v for k, v in enc.items() if k in tokenizer.model_input_names}
        with torch.no_grad():
            out = model(**inputs)
        best = (-1e9, 0, 0)
        for w in range(out.start_logits.shape[0]):
            ctx = torch.tensor([sid == 1 for sid in enc.sequence_ids(w)])
            s = out.start_logits[w].masked_fill(~ctx, -1e9)
            e = out.end_logits[w].masked_fill(~ctx, -1e9)
            scores = s[:, None] + e[None, :]
            scores = torch.triu(scores) - torch.triu(torch.full_like(scores, 1e9), diagonal=30)
            flat = int(scores.argmax())
            i, j = divmod(flat, scores.shape[1])
            if float(scores[i, j]) > best[0]:
                best = (float(scores[i, j]), int(offsets[w][i][0]), int(offsets[w][j][1]))
        return {"answer": body["context"][best[1]:best[2]], "start": best[1], "end": best[2]}

    return handle


def style_handler(model_dir: Path) -> Any:
    from PIL import Image

    from services.style.network import load_style_model

    model, _ = load_style_model(model_dir)

    def handle(body: dict[str, Any]) -> dict[str, Any]:
        arr = np.asarray(_image(body), dtype=np.float32)[None]
        h, w = arr.shape[1], arr.shape[2]
        arr = np.pad(arr, ((0, 0), (0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="edge")
        out = np.clip(np.asarray(model(arr, training=False))[0, :h, :w], 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="PNG")
        return {"image_b64": base64.b64encode(buf.getvalue()).decode("ascii")}

    return handle


HANDLERS = {"vqa": vqa_handler, "qa": qa_handler, "style": style_handler}


def create_app(settings: NaiveSettings | None = None) -> FastAPI:
    settings = settings or NaiveSettings()  # type: ignore[call-arg]
    handle = HANDLERS[settings.task](settings.model_dir)
    app = FastAPI(title=f"naive {settings.task} baseline")

    @app.post("/v1/predict")
    async def predict(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(handle(body))  # on the event loop: one request at a time, like the seeds

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app
