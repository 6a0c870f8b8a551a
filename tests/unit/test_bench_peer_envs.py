"""The bench peers' environments: pinned with hashes, torch the CPU build, from the CPU index on a
machine that has no local torch wheel (harness/bench/peers/envs.py, requirements/*.in -> *.txt);
and the batch lines their decoders log (harness/bench/peers/batch_log.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.bench.peers import envs
from services.ops import lockfile

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("peer", envs.PEERS)
def test_every_peer_pin_is_exact_and_hashed_and_torch_is_the_cpu_build(peer: str) -> None:
    pins = lockfile.parse_lock(envs.requirements_file(peer))
    assert len(pins) > 50
    assert all(hashes >= 1 for _version, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]
    assert pins["torch"][0] == "2.13.0+cpu"
    cuda = [name for name in pins if name.startswith("nvidia-") and name != "nvidia-ml-py"]
    assert not cuda, f"a CUDA package slipped into the {peer} pins: {cuda}"
    assert {"pillow", "transformers", peer} <= set(pins), "the VQA peers need pillow; every peer its server"
    # envs.pins reads the same versions out of the hashed format
    assert envs.pins(peer) == {name: version for name, (version, _) in pins.items()}


@pytest.mark.parametrize("peer", envs.PEERS)
def test_every_requirement_of_the_in_file_is_pinned_at_its_version(peer: str) -> None:
    pins = envs.pins(peer)
    source = envs.requirements_file(peer).with_suffix(".in")
    for line in source.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name, _, version = spec.partition("==")
        name = lockfile.canonical(name.split("[", 1)[0])
        assert name in pins, f"{source.name} asks for {name}, which {peer}.txt does not pin: run make lock-peers"
        if version:
            assert pins[name] == version, f"{name}: {source.name} says {version}, {peer}.txt {pins[name]}"


def test_torch_comes_from_the_cpu_index_without_a_local_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A user's machine: no TORCH_WHEEL_DIR, no pip find-links folder with the wheel -> PyTorch's CPU index
    (PyPI's plain torch is the CUDA build)."""
    monkeypatch.delenv("TORCH_WHEEL_DIR", raising=False)
    monkeypatch.delenv("TORCH_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip reads no configuration file at all
    assert envs.torch_source() == ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]

    monkeypatch.setenv("TORCH_INDEX_URL", "https://mirror.example/whl/cpu")
    assert envs.torch_source() == ["--extra-index-url", "https://mirror.example/whl/cpu"]

    monkeypatch.setenv("TORCH_WHEEL_DIR", str(tmp_path))
    assert envs.torch_source() == ["--find-links", str(tmp_path)]


def test_the_overlay_installs_the_missing_pins_with_their_hashes() -> None:
    text = envs.overlay_requirements("kserve")
    missing = envs.overlay_packages("kserve")
    assert missing, "the project's environment has no kserve: the overlay must install it"
    lines = [line for line in text.splitlines() if line and not line[0].isspace()]
    assert [line.rstrip(" \\") for line in lines] == missing
    assert text.count("--hash=sha256:") >= len(missing)


def test_the_batch_lines_a_peer_logs_are_read_back(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.bench.peers.batch_log import logged_batch, read_batches

    assert logged_batch(3, lambda: "answers") == "answers"
    assert logged_batch(5, lambda: None) is None
    written = capsys.readouterr().out
    # the lines as they land in a server's log: among its own lines, one cut short by another writer
    log = "INFO started\n" + written + 'PEER_BATCH {"size": 2, "sec\n' + "[worker] " + written.splitlines()[0]
    total, count, seconds = read_batches(log)
    assert (total, count) == (11, 3)
    assert seconds >= 0
    assert read_batches("no batch lines here\n") == (0.0, 0.0, 0.0)
