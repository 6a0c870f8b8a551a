"""Score an extractive-QA model on the facts world's held-out sets: in-generator, unseen names
and sentence forms (``services/world/facts_unseen.py``), questions the context does not answer,
and the calibration table (confidence bins against exact match).

    python scripts/qa_generalisation.py MODEL_DIR            a saved model directory
    python scripts/qa_generalisation.py --registry DATA_DIR  production qa-extractive of DATA_DIR/registry
    --no-snap   score spans as the model gives them (the runtime before issue 26 did not widen
                them to whole words)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    import services.qa.runtime as runtime
    from services.qa.build import SIZES, evaluate

    args = [a for a in argv if not a.startswith("--")]
    if "--no-snap" in argv:
        runtime.snap_to_words = lambda text, start, end: (start, end)
    path = Path(args[0])
    if "--registry" in argv:
        from services.common.registry import Registry

        registry = Registry(path / "registry")
        path = registry.version_dir("qa-extractive", registry.resolve("qa-extractive"))
    model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    metrics = evaluate(model, tokenizer, 0, SIZES["world"]["max_position_embeddings"])
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
