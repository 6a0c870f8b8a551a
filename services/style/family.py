"""The style-transfer family's registration (entry point ``loopline.families: style``)."""

from __future__ import annotations

from services.common.signatures import Signature, TensorSpec
from services.common.tasks import Task

from .schemas import DEFAULT_PORT, FAMILY_NAME, StyleInput, StyleResponse

FAMILY = Task(
    name=FAMILY_NAME, summary="neural style transfer (Keras TransformerNet), one model per style", default_port=DEFAULT_PORT,
    package=__package__, framework="tensorflow", request=StyleInput, response=StyleResponse,
    signature=Signature(
        inputs=(TensorSpec("image", "BYTES", "image_b64", "image"),
                TensorSpec("style", "BYTES", "style", "variant", optional=True)),
        outputs=(TensorSpec("image", "BYTES", "image_b64", "image"),)),
    metric=("total_loss", "lower"), tiny_builder="services.style.network:build_tiny",  # the network is the builder
    tiny_models={"style-mosaic": {"style": "mosaic", "seed": 0}, "style-sketch": {"style": "sketch", "seed": 1}},
    event_output=("style", "width", "height"), model_prefix="style-", learns_from_feedback=False,
    job_inputs=("style_image", "content_dir"), world="styles", default_variant="mosaic",
    ui={"title": "Stylize an image", "button": "Stylize", "busy": "Stylizing…",
        "correction": "What should be different?"},
)
