"""BentoML services serving the bench's QA and VQA models (one per ``bentoml serve``).

Configured as BentoML's docs recommend for a CPU model: a ``@bentoml.service`` class that
loads the model once per worker, and an API with adaptive batching on
(``@bentoml.api(batchable=True, max_batch_size=..., max_latency_ms=...)``, "Adaptive
batching", https://docs.bentoml.com/en/latest/get-started/adaptive-batching.html), with the
service's ``traffic.concurrency`` set to the batch size as the "Concurrency" page asks for
batching services (https://docs.bentoml.com/en/latest/scale-with-bentocloud/scaling/autoscaling.html)
and ``workers`` from the "Workers" page (https://docs.bentoml.com/en/latest/build-with-bentoml/parallelize-requests.html):
one process per CPU-bound worker, each with its share of the cores.

Run inside the bentoml environment: ``bentoml serve bentoml_service:QaService --port P`` (or
``VqaService``) with ``PEER_MODEL_DIR``, ``PEER_WORKERS``, ``PEER_MAX_BATCH_SIZE``, ``PEER_MAX_LATENCY_MS``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from qa_core import QaModel
from vqa_core import VqaModel

WORKERS = int(os.environ.get("PEER_WORKERS", "1"))
MAX_BATCH_SIZE = int(os.environ.get("PEER_MAX_BATCH_SIZE", "8"))
MAX_LATENCY_MS = int(os.environ.get("PEER_MAX_LATENCY_MS", "60000"))


@bentoml.service(workers=WORKERS, traffic={"concurrency": MAX_BATCH_SIZE * WORKERS, "timeout": 300})
class QaService:
    def __init__(self) -> None:
        self.qa = QaModel(os.environ["PEER_MODEL_DIR"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.qa.predict([(i["question"], i["context"]) for i in items])


@bentoml.service(workers=WORKERS, traffic={"concurrency": MAX_BATCH_SIZE * WORKERS, "timeout": 300})
class VqaService:
    def __init__(self) -> None:
        self.vqa = VqaModel(os.environ["PEER_MODEL_DIR"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.vqa.predict([(i["image_b64"], i["question"]) for i in items])
