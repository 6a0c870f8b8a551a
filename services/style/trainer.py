"""Style: fast style transfer (Johnson et al.) in Keras with a perceptual loss.

The loss network is VGG19 from a weights file (``LOOPLINE_FINETUNE_STYLE_VGG19_WEIGHTS``) or any saved Keras model
(``LOOPLINE_FINETUNE_STYLE_LOSS_MODEL``) whose outputs are ``[content features, *style features]`` and whose
input is float RGB in [0, 255]. Nothing is downloaded. A new ``style-<name>`` starts from
a fresh TransformerNet; further training starts from the production version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from services.common.tasks import get_task
from services.common.training import StepTracker, TrainContext, Trained, Trainer, TrainingError

from .network import PerceptualLoss
from .schemas import FAMILY_NAME

DEFAULT_LR = 1e-3
VGG_CONTENT = "block3_conv3"
VGG_STYLE = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")


def load_image(path: Path, side: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.fit(ImageOps.exif_transpose(img).convert("RGB"), (side, side), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32)


def loss_network(settings: Any) -> Any:
    try:
        import keras
    except ImportError as exc:
        raise TrainingError("style training needs TensorFlow, which this image does not carry: run it in the "
                            "finetune-full image (or install loopline[style])") from exc

    if settings.loss_model is not None:
        if not Path(settings.loss_model).is_file():
            raise TrainingError(f"style loss model {settings.loss_model} does not exist")
        net = keras.models.load_model(settings.loss_model, compile=False)
    elif settings.vgg19_weights is not None:
        if not Path(settings.vgg19_weights).is_file():
            raise TrainingError(f"style training needs the VGG19 no-top weights at {settings.vgg19_weights}, and that file "
                                "does not exist: copy vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 there "
                                "(docs/deploy.md, Style fine-tuning)")
        vgg = keras.applications.VGG19(include_top=False, weights=str(settings.vgg19_weights))
        outputs = [vgg.get_layer(VGG_CONTENT).output] + [vgg.get_layer(n).output for n in VGG_STYLE]
        inputs = keras.Input((None, None, 3))
        features = keras.Model(vgg.input, outputs)(keras.applications.vgg19.preprocess_input(inputs))
        net = keras.Model(inputs, features, name="vgg19_features")
    else:
        raise TrainingError("style training needs a perceptual loss network: set LOOPLINE_FINETUNE_STYLE_VGG19_WEIGHTS "
                            "(VGG19 no-top .h5) or LOOPLINE_FINETUNE_STYLE_LOSS_MODEL (.keras)")
    net.trainable = False
    return net


class StyleTrainer(Trainer):
    task = FAMILY_NAME

    def __init__(self) -> None:
        self.loss: PerceptualLoss | None = None
        self.side = 0

    def train(self, ctx: TrainContext, rows: list[dict[str, Any]]) -> Trained:
        import keras
        import tensorflow as tf

        from .network import build_transformer_net, load_style_model, save_style_model, training_step

        hp, settings = ctx.hyper, ctx.settings
        keras.utils.set_random_seed(hp.seed)
        tf.config.experimental.enable_op_determinism()
        _threads(settings.num_threads)
        ctx.reporter.report({"phase": "loading"})
        self.side = hp.image_size - hp.image_size % 4
        style_name = get_task(FAMILY_NAME).short_name(ctx.model)
        self.loss = PerceptualLoss(loss_network(ctx.family_settings), load_image(Path(rows[0]["style"]), self.side),
                                   hp.content_weight, hp.style_weight)
        production = ctx.registry.resolve(ctx.model, "production")
        if production is not None:
            net, config = load_style_model(ctx.registry.version_dir(ctx.model, production))
            config = {**config, "style": style_name}
        else:
            config = {"width": ctx.family_settings.width, "res_blocks": ctx.family_settings.res_blocks, "style": style_name}
            net = build_transformer_net(config["width"], config["res_blocks"])
        images = np.stack([load_image(ctx.data_dir / r["path"], self.side) for r in rows])
        optimiser = keras.optimizers.Adam(hp.learning_rate or DEFAULT_LR)
        loss = self.loss
        step = training_step(net, loss, optimiser)

        initial = float(loss.total(net(images, training=False), images))
        total = hp.steps_for(len(images))
        tracker = StepTracker(ctx.reporter, total, settings.progress_interval_s)
        tracker.step(0, initial, force=True)
        rng = np.random.default_rng(hp.seed)
        value = initial
        for i in range(1, total + 1):
            pick = rng.choice(len(images), size=min(hp.batch_size, len(images)), replace=False)
            value = float(step(tf.constant(images[np.sort(pick)])))
            tracker.step(i, value, epoch=(i * hp.batch_size) // len(images), force=i == total)
        final = float(loss.total(net(images, training=False), images))
        return Trained(write=lambda out: save_style_model(net, Path(out), config), kind="full", framework="tensorflow",
                       base=None, parent_version=production,
                       train_scores={"initial_loss": round(initial, 6), "final_loss": round(final, 6),
                                     "steps": total, "image_size": self.side})

    def evaluate(self, ctx: TrainContext, version: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from .network import load_style_model

        assert self.loss is not None, "train() builds the loss network first"
        net, _ = load_style_model(ctx.registry.version_dir(ctx.model, version))
        images = np.stack([load_image(ctx.data_dir / r["path"], self.side) for r in rows])
        c, s = self.loss.parts(net(images, training=False), images)
        c, s = c.numpy().astype(float), s.numpy().astype(float)
        t = self.loss.cw * c + self.loss.sw * s
        return {"content_loss": round(float(c.mean()), 6), "style_loss": round(float(s.mean()), 6),
                "total_loss": round(float(t.mean()), 6), "count": len(rows),
                "rows": {"total_loss": [float(x) for x in t]}}


def _threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass
