"""The shapes world the VQA model learns (docs/world.md): scenes, questions and a second renderer."""
