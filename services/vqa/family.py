"""The VQA family's registration (entry point ``loopline.families: vqa``)."""

from __future__ import annotations

from services.common.signatures import Signature, TensorSpec
from services.common.tasks import Task

from .schemas import DEFAULT_PORT, FAMILY_NAME, VqaInput, VqaResponse

FAMILY = Task(
    name=FAMILY_NAME, summary="visual question answering (BLIP)", default_port=DEFAULT_PORT,
    package=__package__, framework="torch", request=VqaInput, response=VqaResponse,
    signature=Signature(
        inputs=(TensorSpec("question", "BYTES", "question"), TensorSpec("image", "BYTES", "image_b64", "image")),
        outputs=(TensorSpec("answer", "BYTES", "answer"), TensorSpec("confidence", "FP32", "confidence", "number"))),
    metric=("accuracy", "higher"), tiny_models={"vqa-blip": {"seed": 0}}, event_output=("answer",),
    sample_dataset="samples/world-vqa.csv", world="shapes",
    default_model="vqa-blip", hub_id="Salesforce/blip-vqa-base", hub_aliases=("Salesforce/blip-vqa-capfilt-large",),
    ui={"title": "Ask about an image", "button": "Ask", "busy": "Asking…", "answer_empty": "(no answer)",
        "correction": "The right answer", "placeholders": {"question": "What color is the shape?"}},
)
