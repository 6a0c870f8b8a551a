"""KServe's Python model server (``kserve.Model`` + ``kserve.ModelServer``) serving the bench's QA or VQA model.

Configured as KServe's "Deploy Custom Python Serving Runtime" guide writes one
(https://kserve.github.io/website/docs/model-serving/predictive-inference/frameworks/custom-predictor/):
a ``kserve.Model`` whose ``load`` runs at start and whose ``predict`` takes the v1 protocol's
``{"instances": [...]}``. KServe's batching lives in the Kubernetes agent sidecar (a Go
binary injected by the InferenceService webhook, "Inference Batcher" page), not in the
Python server, so outside Kubernetes there is none: the server gets ``--workers`` uvicorn
processes instead, each with its share of the cores.

Run inside the kserve environment:
``python kserve_server.py --task qa|vqa --model_dir DIR --http_port P --workers N``
(KServe's own argument parser reads the server options).
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
from qa_core import QaModel
from vqa_core import VqaModel


class QaKServeModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.qa: QaModel | None = None

    def load(self) -> bool:
        self.qa = QaModel(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        assert self.qa is not None
        items = [(i["question"], i["context"]) for i in payload["instances"]]
        return {"predictions": self.qa.predict(items)}


class VqaKServeModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.vqa: VqaModel | None = None

    def load(self) -> bool:
        self.vqa = VqaModel(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        assert self.vqa is not None
        items = [(i["image_b64"], i["question"]) for i in payload["instances"]]
        return {"predictions": self.vqa.predict(items)}


MODELS = {"qa": QaKServeModel, "vqa": VqaKServeModel}


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], conflict_handler="resolve")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--task", choices=sorted(MODELS), default="qa")
    args, _ = parser.parse_known_args()
    model = MODELS[args.task](args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(http_port=args.http_port, workers=args.workers, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
