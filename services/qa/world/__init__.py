"""The facts world the QA model learns (docs/world.md): facts, held-out names and forms, the tokenizer."""
