"""Score an extractive-QA model on the facts world's held-out sets: in-generator, unseen names
and sentence forms (``services/qa/world/facts_unseen.py``), questions the context does not answer,
and the calibration table (confidence bins against exact match).

    python scripts/qa_generalisation.py MODEL_DIR            a saved model directory
    python scripts/qa_generalisation.py --registry DATA_DIR  production qa-extractive of DATA_DIR/registry
    --no-snap   score spans as the model gives them (the runtime before issue 26 did not widen
                them to whole words)

It also prints the answers to the paragraphs issue 26 was filed with, as the runtime chooses them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# the issue's five paragraphs, then the seed project's README example
ISSUE_PARAGRAPHS = (
    ("Zorbland is a country in Europe. Its capital city is Quimbar.", "What is the capital of Zorbland?"),
    ("Kwame wrote a poem in 1843. Bob built a bridge in 1901.", "Who wrote a poem in 1843?"),
    ("Norway is a country in Europe. Its capital city is Oslo.", "What is the capital of Norway?"),
    ("Mara lives in Lisbon.", "Where does Mara live?"),
    ("Spain is a country in Europe. Its capital city is Madrid.", "What is the capital of Spain?"),
    ("France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower and Louvre "
     "Museum.", "What is the capital of France?"),
)


def main(argv: list[str]) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    import services.qa.runtime as runtime
    from services.qa.build import answer, evaluate
    from services.qa.world.facts import QAItem

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
    max_len = min(384, model.config.max_position_embeddings)  # the runtime's window
    metrics = evaluate(model, tokenizer, 0, max_len)
    print(json.dumps(metrics, indent=2))
    items = [QAItem(question, context, "", "issue") for context, question in ISSUE_PARAGRAPHS]
    for item, (got, confidence) in zip(items, answer(model, tokenizer, items, max_len), strict=True):
        print(f"{item.question} -> {got!r} ({confidence:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
