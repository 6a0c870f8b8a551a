"""Build a BLIP VQA model offline (random weights, real architecture) for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY = {
    "text": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64),
    # BlipVisionConfig's default initializer_range (1e-10) would make random image features
    # vanish, so a tiny model would ignore its image and could not be fine-tuned on it
    "vision": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   image_size=64, patch_size=16, initializer_range=0.02),
}
# Salesforce/blip-vqa-base: ViT-B/16 at 384 px, BERT-base text encoder/decoder
BASE = {
    "text": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 max_position_embeddings=512),
    "vision": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                   image_size=384, patch_size=16, initializer_range=0.02),
}
LARGE_VISION = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    image_size=384, patch_size=16)
SIZES: dict[str, dict[str, Any]] = {"tiny": TINY, "base": BASE, "large": {"text": BASE["text"], "vision": LARGE_VISION}}


def build_blip(out_dir: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write a loadable ``BlipForQuestionAnswering`` + ``BlipProcessor`` directory."""
    import torch
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    from services.common.tiny_tokenizer import build_bert_tokenizer

    spec = SIZES[size]
    tokenizer = build_bert_tokenizer(model_max_length=spec["text"]["max_position_embeddings"])
    ids = tokenizer.convert_tokens_to_ids
    config = BlipConfig(
        text_config={**spec["text"], "vocab_size": len(tokenizer), "pad_token_id": ids("[PAD]"),
                     "bos_token_id": ids("[CLS]"), "sep_token_id": ids("[SEP]"), "eos_token_id": ids("[SEP]")},
        vision_config=spec["vision"],
    )
    torch.manual_seed(seed)
    model = BlipForQuestionAnswering(config).eval()
    side = spec["vision"]["image_size"]
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}),
                              tokenizer=tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
