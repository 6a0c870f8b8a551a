"""TransformerNet (Johnson et al. 2016) in Keras 3, and its on-disk form.

A style version directory holds ``config.json`` (widths, residual blocks, style name)
and ``weights.safetensors`` (the Keras weights in order). safetensors is byte-for-byte
reproducible, unlike a zipped ``.keras`` file that stamps the save time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY = {"width": 4, "res_blocks": 1}
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
