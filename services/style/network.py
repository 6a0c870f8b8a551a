"""TransformerNet (Johnson et al. 2016) in Keras 3, and its on-disk form.

A style version directory holds ``config.json`` (widths, residual blocks, style name)
and ``weights.safetensors`` (the Keras weights in order). safetensors is byte-for-byte
reproducible, unlike a zipped ``.keras`` file that stamps the save time.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TINY = {"width": 4, "res_blocks": 1}
WORLD = {"width": 8, "res_blocks": 1}
FULL = {"width": 32, "res_blocks": 5}  # the paper's widths: 32, 64, 128 channels


def build_transformer_net(width: int = 32, res_blocks: int = 5) -> Any:
    import keras
    from keras import layers

    def conv(x: Any, filters: int, kernel: int, strides: int = 1, relu: bool = True) -> Any:
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same")(x)
        x = layers.GroupNormalization(groups=-1, epsilon=1e-5)(x)  # instance norm
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input(shape=(None, None, 3), name="image")  # float pixels in [0, 255]
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = conv(x, width, 9)
    x = conv(x, width * 2, 3, strides=2)
    x = conv(x, width * 4, 3, strides=2)
    for _ in range(res_blocks):
        y = conv(x, width * 4, 3)
        y = conv(y, width * 4, 3, relu=False)
        x = layers.Add()([x, y])
    for filters in (width * 2, width):
        x = layers.UpSampling2D(2, interpolation="nearest")(x)
        x = conv(x, filters, 3)
    x = layers.Conv2D(3, 9, padding="same", activation="tanh")(x)
    outputs = layers.Rescaling(127.5, offset=127.5, name="stylized")(x)
    return keras.Model(inputs, outputs, name="transformer_net")


def save_style_model(model: Any, out_dir: Path, config: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    weights = {f"w{i:04d}": w for i, w in enumerate(model.get_weights())}
    save_file(weights, str(out_dir / "weights.safetensors"))


def load_style_model(version_dir: Path) -> tuple[Any, dict[str, Any]]:
    from safetensors.numpy import load_file

    config = json.loads((Path(version_dir) / "config.json").read_text(encoding="utf-8"))
    model = build_transformer_net(int(config["width"]), int(config["res_blocks"]))
    stored = load_file(str(Path(version_dir) / "weights.safetensors"))
    model.set_weights([stored[k] for k in sorted(stored)])
    return model, config


def build_style(out_dir: Path, style: str, size: str = "tiny", seed: int = 0) -> None:
    """A randomly initialised TransformerNet for ``style`` (offline tests, benchmarks)."""
    import keras

    spec = TINY if size == "tiny" else FULL
    keras.utils.set_random_seed(seed)
    model = build_transformer_net(**spec)
    save_style_model(model, out_dir, {**spec, "style": style})


def gram(features: Any) -> Any:
    import tensorflow as tf

    shape = tf.shape(features)
    flat = tf.reshape(features, (shape[0], -1, shape[3]))
    size = tf.cast(shape[1] * shape[2] * shape[3], tf.float32)
    return tf.matmul(flat, flat, transpose_a=True) / size


class PerceptualLoss:
    def __init__(self, net: Any, style_image: Any, content_weight: float, style_weight: float) -> None:
        self.net, self.cw, self.sw = net, content_weight, style_weight
        self.style_grams = [gram(f) for f in self.net(style_image[None])[1:]]

    def parts(self, stylized: Any, content: Any) -> tuple[Any, Any]:
        """Per-image (content loss, style loss)."""
        import tensorflow as tf

        out, ref = self.net(stylized), self.net(content)
        content_loss = tf.reduce_mean(tf.square(out[0] - ref[0]), axis=[1, 2, 3])
        style_loss = tf.add_n([tf.reduce_mean(tf.square(gram(f) - g), axis=[1, 2])
                               for f, g in zip(out[1:], self.style_grams, strict=True)])
        return content_loss, style_loss

    def total(self, stylized: Any, content: Any) -> Any:
        import tensorflow as tf

        c, s = self.parts(stylized, content)
        return tf.reduce_mean(self.cw * c + self.sw * s)



def training_step(net: Any, loss: PerceptualLoss, optimiser: Any) -> Callable[[Any], Any]:
    """One optimiser step on a batch of content images, compiled (the tiny build and fine-tuning share it)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(batch: Any) -> Any:
        with tf.GradientTape() as tape:
            value = loss.total(net(batch, training=True), batch)
        grads = tape.gradient(value, net.trainable_variables)
        optimiser.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return value

    return step


def build_tiny(out_dir: Path, style: str, seed: int = 0, steps: int = 160, batch_size: int = 4, side: int = 64,
               content_weight: float = 1.0, style_weight: float = 3000.0,
               progress: Callable[[str, int, int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train a small TransformerNet for a world style (:mod:`services.style.world.styles`) with the
    offline random-feature loss network; write it to ``out_dir``; return held-out losses of
    the trained network and of the same network before training.

    TensorFlow runs on one intra-op thread where this process has not started TensorFlow yet
    (the bootstrap's worker processes, a fresh ``loopline models bootstrap``): float sums depend
    on how work is split between threads, so the weights are then the same on every machine of
    a kind, whatever its core count or load; a process whose TensorFlow already runs keeps its
    thread count."""
    import keras
    import numpy as np
    import tensorflow as tf

    from services.style.world import styles

    with contextlib.suppress(RuntimeError):  # RuntimeError: TensorFlow already initialised here
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    style_pixels = np.asarray(styles.style_image(style, side * 2, seed=0), dtype=np.float32)
    loss = PerceptualLoss(styles.loss_network(), style_pixels, content_weight, style_weight)
    content = styles.content_images(seed, 256, side)
    held = styles.content_images(seed + 10_000, 16, side)
    net = build_transformer_net(**WORLD)

    def losses() -> dict[str, float]:
        c, s = loss.parts(net(held, training=False), held)
        c, s = float(tf.reduce_mean(c)), float(tf.reduce_mean(s))
        return {"content_loss": round(c, 6), "style_loss": round(s, 6),
                "total_loss": round(content_weight * c + style_weight * s, 6)}

    before = losses()
    optimiser = keras.optimizers.Adam(3e-3)

    step = training_step(net, loss, optimiser)
    rng = np.random.default_rng(seed)
    for i in range(1, steps + 1):
        value = float(step(tf.constant(content[np.sort(rng.choice(len(content), batch_size, replace=False))])))
        if progress and (i % 20 == 0 or i == steps):
            progress("train", i, steps, {"loss": round(value, 4)})
    after = losses()
    save_style_model(net, out_dir, {**WORLD, "style": style})
    return {"heldout": {**after, "count": len(held)}, "untrained": before,
            "loss_network": "random-features (services.style.world.styles.loss_network)",
            "train_seconds": round(time.monotonic() - started, 1), "steps": steps}
