"""Style-transfer runtime: one Keras TransformerNet per style (``style-<name>`` models).

The output PNG has the input's size, bounded by the ``max_side`` setting (aspect kept).
Same-size images in a batch run as one tensor; other sizes run as their own groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from PIL import Image
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.errors import Invalid
from services.common.images import b64_bytes, decode_image, encode_png, read_image_path
from services.common.runtime import ModelRuntime
from services.common.serving import create_serving_app
from services.common.settings import ImageInputSettings, PrecisionSettings, ServingSettings
from services.common.tasks import get_task
from services.common.torch_shared import (
    PrecisionChoice,
    choose_bf16,
    cpu_kind,
    log_precision,
    remembered_bf16,
    sequential_agreement,
    version_key,
)

from .schemas import DEFAULT_PORT, FAMILY_NAME, StyleRequest

# an output image "agrees" when its pixels differ from fp32 by at most this mean (0-255 scale):
# below what a viewer sees, and the same order as PNG/JPEG round trips
STYLE_AGREEMENT_MEAN_ABS = 2.0


def image_agreement(reference: np.ndarray, got: np.ndarray) -> float:
    """Share of images whose mean absolute pixel difference is within ``STYLE_AGREEMENT_MEAN_ABS``."""
    diff = np.abs(reference.astype(np.float32) - got.astype(np.float32)).reshape(len(reference), -1).mean(axis=1)
    return float((diff <= STYLE_AGREEMENT_MEAN_ABS).mean())


class StyleSettings(PrecisionSettings, ImageInputSettings, ServingSettings):
    """The style service (``LOOPLINE_STYLE_*``); it serves every ``style-<name>`` model."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_STYLE_", extra="ignore")

    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="port this service listens on")
    max_side: int = Field(1024, ge=16, description="output longest side (larger inputs are scaled down)")
    jit_compile: bool = Field(False, description="XLA-compile the Keras network (tf.function jit_compile)")


def fit_within(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, max_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


class StyleRuntime(ModelRuntime):
    task = FAMILY_NAME
    request_model = StyleRequest
    settings_class = StyleSettings
    settings: StyleSettings

    @classmethod
    def model_name(cls, request: Any) -> str | None:
        return request.model or get_task(FAMILY_NAME).model_name(request.style)

    @staticmethod
    def configure_threads(settings: ServingSettings) -> None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(settings.num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process (tests run several apps)
            pass

    def load(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        from services.style.network import load_style_model

        self.model, self.config = load_style_model(version_dir)
        self._call = self._compiled(self.model)
        self.precision = PrecisionChoice(False, "fp32")
        if self.settings.bf16 != "off" and cpu_kind().native_bf16:
            built: list[tuple[Any, Any]] = []

            def mixed() -> tuple[Any, Any]:  # built only when checked or chosen, once
                if not built:
                    model = self._mixed_bfloat16(version_dir)
                    built.append((model, self._compiled(model)))
                return built[0]

            def pixels(call: Any) -> Any:
                # one "answer" per image: its rounded pixels, compared by image_agreement below
                return lambda batch: [{"answer": im} for im in np.clip(call(np.stack(batch)).numpy(), 0, 255).round()]

            def agreement() -> float:
                return sequential_agreement(
                    list(self.agreement_inputs(self.settings.bf16_check_inputs)), 4, pixels(self._call),
                    pixels(mixed()[1]), same=lambda a, b: image_agreement(a["answer"][None], b["answer"][None]) == 1.0)

            key = (*version_key(version_dir, manifest), "keras", self.settings.bf16_check_inputs)
            self.precision = remembered_bf16(key, self.settings.bf16, True,
                                             agreement if self.settings.bf16 == "auto" else None)
            if self.precision.bf16:
                self.model, self._call = mixed()
        elif self.settings.bf16 != "off":
            self.precision = choose_bf16(self.settings.bf16, False)
        log_precision(type(self).__name__, self.precision)

    def _compiled(self, model: Any) -> Any:
        import tensorflow as tf

        return tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), reduce_retracing=True,
                           jit_compile=self.settings.jit_compile or None,
                           input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    @staticmethod
    def _mixed_bfloat16(version_dir: Path) -> Any:
        """The same network and weights under Keras' ``mixed_bfloat16`` policy (bf16 compute, fp32 weights)."""
        import keras

        from services.style.network import load_style_model

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            model, _ = load_style_model(version_dir)
        finally:
            keras.config.set_dtype_policy(previous)
        return model

    def agreement_inputs(self, count: int) -> np.ndarray:
        """Shapes-world scenes (services/style/world/styles.py) at 128 px for the bf16 agreement check."""
        from services.style.world.styles import content_images

        return content_images(seed=1234, count=count, side=128)

    def prepare(self, request: StyleRequest) -> np.ndarray:
        limit = self.settings.max_body_bytes
        raw = (b64_bytes(request.image_b64, limit) if request.image_b64 is not None
               else read_image_path(self.data_dir, request.image_path or "", limit))
        image = decode_image(raw, self.settings.max_image_pixels, limit, draft_side=self.settings.max_side)
        target = fit_within(image.size, self.settings.max_side)
        if target != image.size:
            image = image.resize(target, Image.Resampling.BILINEAR)
        if min(image.size) < 4:
            raise Invalid("the image is too small to stylize (at least 4x4 pixels)")
        return np.asarray(image, dtype=np.float32)

    def warmup(self) -> None:
        self.predict([np.zeros((64, 64, 3), np.float32)])

    def predict(self, batch: list[np.ndarray]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(batch)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, arr in enumerate(batch):
            groups.setdefault(arr.shape, []).append(i)
        for shape, members in groups.items():
            h, w = shape[0], shape[1]
            ph, pw = (-h) % 4, (-w) % 4  # two stride-2 stages need sides divisible by 4
            stack = np.stack([batch[i] for i in members])
            if ph or pw:
                stack = np.pad(stack, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 4 else "edge")
            out = self._call(stack).numpy()[:, :h, :w, :]
            for i, img in zip(members, out, strict=True):
                pixels = np.clip(img, 0, 255).astype(np.uint8)
                results[i] = {"image_b64": encode_png(Image.fromarray(pixels)), "style": self.config.get("style"),
                              "width": int(w), "height": int(h)}
        return [r for r in results if r is not None]


def create_app() -> FastAPI:
    app = create_serving_app(StyleRuntime)

    @app.get("/v1/styles", summary="Styles served here, with their loaded versions")
    async def styles() -> dict[str, Any]:
        snap = app.state.pool.snapshot()
        return {"styles": [{"style": get_task(FAMILY_NAME).short_name(name), "model": name, **info} for name, info in snap.items()]}

    return app
