"""The extractive QA family's registration (entry point ``loopline.families: qa``)."""

from __future__ import annotations

from services.common.signatures import Signature, TensorSpec
from services.common.tasks import Task

from .schemas import DEFAULT_PORT, FAMILY_NAME, QaInput, QaResponse

FAMILY = Task(
    name=FAMILY_NAME, summary="extractive question answering (BERT family)", default_port=DEFAULT_PORT,
    package=__package__, framework="torch", request=QaInput, response=QaResponse,
    signature=Signature(
        inputs=(TensorSpec("question", "BYTES", "question"), TensorSpec("context", "BYTES", "context")),
        outputs=(TensorSpec("answer", "BYTES", "answer"), TensorSpec("confidence", "FP32", "confidence", "number"),
                 TensorSpec("start", "INT64", "start", "number"), TensorSpec("end", "INT64", "end", "number"))),
    metric=("f1", "higher"), tiny_models={"qa-extractive": {"seed": 0}},
    event_output=("answer", "start", "end"), sample_dataset="samples/world-qa.json", world="facts",
    default_model="qa-extractive", gateway_timeout_s=30.0,
    hub_id="distilbert-base-cased-distilled-squad", hub_aliases=("distilbert/distilbert-base-cased-distilled-squad",),
    ui={"title": "Ask about a text", "button": "Find the answer", "busy": "Searching…",
        "answer_empty": "(no answer found)", "correction": "The right answer", "highlight": "context",
        "labels": {"context": "Text to search"}, "hints": {"context": "any length"}, "multiline": ["context"],
        "placeholders": {"question": "What is the capital of France?",
                         "context": "Paste a paragraph, an article, a manual…"},
        "example": {"question": "What is the capital of France?",
                    "context": "France is a country in Europe. Its capital city is Paris, which is known for the Eiffel "
                               "Tower and the Louvre Museum. The country has a population of about 68 million people."}},
)
