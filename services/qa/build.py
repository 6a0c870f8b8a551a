"""Build an extractive-QA model offline (random weights, real architecture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(arch="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=128),
    # distilbert-base-cased-distilled-squad
    "base": dict(arch="distilbert", dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512),
}


def build_qa(out_dir: Path, size: str = "tiny", seed: int = 0) -> None:
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, DistilBertConfig, DistilBertForQuestionAnswering

    from services.common.tiny_tokenizer import build_bert_tokenizer

    spec = dict(SIZES[size])
    arch = spec.pop("arch")
    tokenizer = build_bert_tokenizer(model_max_length=spec["max_position_embeddings"])
    torch.manual_seed(seed)
    if arch == "bert":
        model = BertForQuestionAnswering(BertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    else:
        model = DistilBertForQuestionAnswering(DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=0, **spec))
    model.eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
