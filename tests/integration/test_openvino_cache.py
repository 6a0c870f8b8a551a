"""The OpenVINO conversion cache (``<registry>/.openvino-cache``): a second load of a version reads
its conversion instead of tracing the model again and answers the same; a damaged entry is
noticed by its sha256 and converted again; other weights get their own entry; the cache can be
switched off, and a cache that cannot be written never fails a load."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from services.common import openvino_backend as ovb
from services.common.registry import Registry
from tests.fixtures import copy_as_new_version, load_runtime, make_lora_adapter, tiny_bench_version

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not ovb.available(), reason="OpenVINO is not installed (pip install 'loopline[openvino]')")]


def _entries(registry: Path) -> list[Path]:
    root = registry / ".openvino-cache"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".tmp-")) if root.is_dir() else []


def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("converted again although the cache holds this version")

    monkeypatch.setattr(ovb, "convert", refuse)


def _answers(task: str, version_dir: Path, **settings: object) -> tuple[list[dict], object]:
    runtime = load_runtime(task, version_dir, bf16="off", backend="openvino", **settings)
    try:
        assert runtime.backend is not None
        return runtime.predict(runtime.agreement_inputs(6)), runtime.backend.precision
    finally:
        runtime.unload()


@pytest.fixture()
def qa_registry(tmp_path: Path) -> Path:
    tiny_bench_version(tmp_path, "qa")
    return tmp_path


def test_a_second_load_reads_the_conversion_and_answers_the_same(qa_registry: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    version = qa_registry / "qa-extractive" / "1"
    first, precision = _answers("qa", version)
    (entry,) = _entries(qa_registry)
    assert entry.name.startswith("qa-encoder-")
    digests = json.loads((entry / "sha256.json").read_text())
    assert set(digests) == {"model.xml", "model.bin"} and all(len(d) == 64 for d in digests.values())
    assert Registry(qa_registry).models() == ["qa-extractive"], "the cache is not a model"

    _no_tracing(monkeypatch)
    second, precision_again = _answers("qa", version)
    assert second == first and precision_again == precision == "fp32"


def test_a_damaged_entry_is_converted_again(qa_registry: Path, caplog: pytest.LogCaptureFixture) -> None:
    version = qa_registry / "qa-extractive" / "1"
    first, _ = _answers("qa", version)
    (entry,) = _entries(qa_registry)
    with open(entry / "model.bin", "r+b") as f:  # flip one byte of the weights
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 0xFF]))
    again, _ = _answers("qa", version)
    assert again == first
    assert "model.bin does not match its sha256" in caplog.text
    (rewritten,) = _entries(qa_registry)
    assert rewritten == entry and ovb.read_cached(entry) is not None  # written again, whole


def test_other_weights_and_adapters_get_their_own_entries(qa_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(qa_registry)
    _answers("qa", registry.version_dir("qa-extractive", 1))
    retrained = copy_as_new_version(registry, "qa-extractive", seed=7)
    _answers("qa", registry.version_dir("qa-extractive", retrained.version))
    adapter = make_lora_adapter(registry, "qa-extractive", base_version=1)
    adapted, _ = _answers("qa", registry.version_dir("qa-extractive", adapter.version))
    assert len(_entries(qa_registry)) == 3, "the same name for different weights would serve the wrong model"

    _no_tracing(monkeypatch)  # each is found again under its own name
    assert _answers("qa", registry.version_dir("qa-extractive", adapter.version))[0] == adapted


def test_the_cache_can_be_switched_off(qa_registry: Path) -> None:
    _answers("qa", qa_registry / "qa-extractive" / "1", openvino_cache=False)
    assert not (qa_registry / ".openvino-cache").exists()


def test_a_cache_that_cannot_be_written_never_fails_the_load(qa_registry: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    (qa_registry / ".openvino-cache").write_text("not a directory")
    answers, precision = _answers("qa", qa_registry / "qa-extractive" / "1")
    assert len(answers) == 6 and precision == "fp32"
    assert "could not keep the converted model" in caplog.text


def test_the_registry_cleans_a_dead_writers_partial_entry(qa_registry: Path) -> None:
    partial = qa_registry / ".openvino-cache" / ".tmp-qa-encoder-0123-999-abcd"
    partial.mkdir(parents=True)
    (partial / "model.xml").write_text("<half")
    # no writer lock and untouched for two days: its writer is gone (a fresh one may still be writing)
    assert partial not in Registry(qa_registry).clean_partial()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(partial, (two_days_ago, two_days_ago))
    assert partial in Registry(qa_registry).clean_partial()
    assert not partial.exists()


def test_vqa_keeps_its_three_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = tiny_bench_version(tmp_path, "vqa")
    first, _ = _answers("vqa", version)
    names = sorted(p.name.rsplit("-", 1)[0] for p in _entries(tmp_path))
    assert names == ["vqa-decoder", "vqa-question", "vqa-vision"]
    _no_tracing(monkeypatch)
    again, _ = _answers("vqa", version)
    assert again == first
    shutil.rmtree(tmp_path / ".openvino-cache")


def test_only_the_most_recently_used_entries_per_network_are_kept(tmp_path: Path) -> None:
    import os

    def entry(name: str, used: float) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "sha256.json").write_text("{}")
        os.utime(path / "sha256.json", (used, used))
        return path

    vision = [entry(f"vqa-vision-{i:032x}", 1_000_000 + i) for i in range(5)]
    decoder = entry("vqa-decoder-" + "0" * 32, 1)  # another network: not counted with the vision ones
    partial = tmp_path / ".tmp-vqa-vision-x"
    partial.mkdir()
    removed = ovb.prune(tmp_path, "vqa-vision-", keep=3)
    assert sorted(removed) == vision[:2]
    assert all(p.exists() for p in vision[2:]) and decoder.exists() and partial.exists()
