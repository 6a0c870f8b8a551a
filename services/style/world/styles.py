"""The style world: procedural style images, content images, and an offline loss network.

No VGG19 weights exist on these machines, so the perceptual loss uses a **fixed random
convolutional network** built from a seed: three 3x3 conv + ReLU stages (32, 64, 64
channels) with average pooling between them. Gram matrices of random ReLU features still
capture colour and local texture statistics (Ustyuzhaninov et al., "Texture synthesis
using shallow convolutional networks with random filters", 2016), and the middle stage
keeps enough spatial layout for a content loss. Outputs follow the trainer's contract:
``[content features, *style features]`` for float RGB in [0, 255].

Styles: ``mosaic`` (bright tiles with dark grout) and ``sketch`` (dark pen hatching on
paper). Content images are scenes of the shapes world.
"""

from __future__ import annotations

import random
from typing import Any

STYLE_NAMES = ("mosaic", "sketch")
LOSS_NETWORK_SEED = 1234


def style_image(name: str, side: int = 128, seed: int = 0) -> Any:
    from PIL import Image, ImageDraw

    rng = random.Random(f"{name}-{seed}")
    if name == "mosaic":
        img = Image.new("RGB", (side, side), (40, 30, 25))
        draw = ImageDraw.Draw(img)
        palette = [(230, 60, 40), (250, 190, 30), (40, 140, 200), (60, 170, 90), (240, 240, 220), (150, 60, 160)]
        tile = side // 10
        for y in range(0, side, tile):
            for x in range(0, side, tile):
                jitter = [rng.randint(1, 3) for _ in range(4)]
                draw.rectangle((x + jitter[0], y + jitter[1], x + tile - jitter[2], y + tile - jitter[3]),
                               fill=rng.choice(palette))
        return img
    if name == "sketch":
        img = Image.new("RGB", (side, side), (245, 240, 225))
        draw = ImageDraw.Draw(img)
        for _ in range(90):
            x, y = rng.uniform(0, side), rng.uniform(0, side)
            dx, dy = rng.uniform(8, 30), rng.uniform(-10, 10)
            shade = rng.randint(20, 90)
            draw.line((x, y, x + dx, y + dy), fill=(shade, shade, shade + 10), width=rng.choice((1, 1, 2)))
        return img
    raise ValueError(f"unknown world style {name!r}; known: {', '.join(STYLE_NAMES)}")


def content_images(seed: int, count: int, side: int) -> Any:
    """``count`` shapes-world scenes as a float32 array (N, side, side, 3) in [0, 255]."""
    import numpy as np

    from services.vqa.world import shapes

    rng = random.Random(seed)
    return np.stack([np.asarray(shapes.render(shapes.sample_scene(rng), side), dtype=np.float32)
                     for _ in range(count)])


def loss_network(seed: int = LOSS_NETWORK_SEED) -> Any:
    """The fixed random feature network (see the module docstring); not trainable."""
    import keras
    from keras import layers

    init = keras.initializers.HeUniform(seed=seed)
    inputs = keras.Input((None, None, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    a = layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init)(x)
    b = layers.Conv2D(64, 3, padding="same", activation="relu",
                      kernel_initializer=keras.initializers.HeUniform(seed=seed + 1))(layers.AveragePooling2D(2)(a))
    c = layers.Conv2D(64, 3, padding="same", activation="relu",
                      kernel_initializer=keras.initializers.HeUniform(seed=seed + 2))(layers.AveragePooling2D(2)(b))
    net = keras.Model(inputs, [b, a, b, c], name="random_features")
    net.trainable = False
    return net
