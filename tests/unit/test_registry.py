from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.errors import BadRequest, Conflict, NotFound
from services.common.registry import Registry

pytestmark = pytest.mark.unit


def _write_files(content: bytes = b"weights"):
    def write(d: Path) -> None:
        (d / "model.bin").write_bytes(content)
        (d / "sub").mkdir()
        (d / "sub" / "tok.json").write_text("{}")
    return write


def test_versions_are_numbered_with_manifest_and_sha256(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    v1 = reg.create_version("m", task="qa", framework="torch", write=_write_files(b"a"))
    v2 = reg.create_version("m", task="qa", framework="torch", write=_write_files(b"b"),
                            lineage={"parent_version": 1, "dataset_sha256": "x" * 64})
    assert (v1.version, v2.version) == (1, 2)
    assert reg.versions("m") == [1, 2]
    man = reg.manifest("m", 2)
    assert set(man["files"]) == {"model.bin", "sub/tok.json"}
    assert man["lineage"]["parent_version"] == 1 and man["kind"] == "full" and man["task"] == "qa"
    assert reg.models() == ["m"]


def test_bad_names_and_task_mismatch_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(BadRequest):
        reg.create_version("../evil", task="qa", framework="torch", write=_write_files())
    reg.create_version("m", task="qa", framework="torch", write=_write_files())
    with pytest.raises(Conflict):
        reg.create_version("m", task="vqa", framework="torch", write=_write_files())
    assert reg.versions("m") == [1]


def test_failed_write_leaves_no_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path)

    def boom(d: Path) -> None:
        (d / "half.bin").write_bytes(b"x" * 100)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        reg.create_version("m", task="qa", framework="torch", write=boom)
    assert reg.versions("m") == []
    assert not list((tmp_path / "m").glob(".tmp-*"))


_SLOW_WRITER = """
import sys, time
from pathlib import Path
from services.common.registry import Registry
def write(d):
    with (d / "big.bin").open("wb") as fh:
        for i in range(10_000):
            fh.write(b"x" * 4096)
            fh.flush()
            if i == 5:
                print("writing", flush=True)
            time.sleep(0.01)
Registry(Path(sys.argv[1])).create_version("m", task="qa", framework="torch", write=write)
"""


def test_kill_9_mid_write_never_lists_a_half_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.create_version("m", task="qa", framework="torch", write=_write_files())
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reg.versions("m") == [1]
    assert list((tmp_path / "m").glob(".tmp-*")), "the killed writer's temp dir should still be there"
    assert reg.verify() == []
    assert reg.create_version("m", task="qa", framework="torch", write=_write_files()).version == 2
    assert reg.clean_partial() and not list((tmp_path / "m").glob(".tmp-*"))


def _promote_many(root: str, start: int, n: int) -> None:
    reg = Registry(Path(root))
    for i in range(n):
        reg.promote("m", 1 + (start + i) % 3, "canary" if i % 2 else "production", weight=0.2)


def test_concurrent_promotions_leave_valid_aliases(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.create_version("m", task="qa", framework="torch", write=_write_files())
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_promote_many, args=(str(tmp_path), k, 25)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads((tmp_path / "m" / "aliases.json").read_text())
    assert len(data["history"]) == 50, "every promotion is recorded: none lost to a race"
    assert data["production"] in (1, 2, 3)
    assert not list((tmp_path / "m").glob(".aliases.json.*"))


def test_rollback_walks_the_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.create_version("m", task="qa", framework="torch", write=_write_files())
    for v in (1, 2, 3):
        reg.promote("m", v)
    assert reg.rollback("m")["production"] == 2
    assert reg.rollback("m")["production"] == 1
    with pytest.raises(Conflict):
        reg.rollback("m")
    assert reg.resolve("m") == 1
    reg.promote("m", 3)
    assert reg.rollback("m")["production"] == 1


def test_canary_weight_and_promotion_ends_canary(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.create_version("m", task="qa", framework="torch", write=_write_files())
    reg.promote("m", 1)
    reg.promote("m", 2, "canary", weight=0.25)
    assert reg.aliases("m")["canary_weight"] == 0.25
    with pytest.raises(BadRequest):
        reg.promote("m", 2, "canary", weight=1.5)
    with pytest.raises(NotFound):
        reg.promote("m", 9)
    reg.promote("m", 2)
    a = reg.aliases("m")
    assert a["production"] == 2 and a["canary"] is None


def test_verify_catches_a_changed_byte(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    ref = reg.create_version("m", task="qa", framework="torch", write=_write_files(b"0123456789"))
    assert reg.verify() == []
    path = ref.path / "model.bin"
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    problems = reg.verify()
    assert len(problems) == 1 and "model.bin" in problems[0]


def test_bootstrap_registers_every_world_model_and_skips_what_exists(tmp_path: Path,
                                                                     tiny_registry_template: Path) -> None:
    import shutil

    from services.ops.bootstrap import bootstrap_tiny

    first = Registry(tiny_registry_template)
    assert first.models() == ["qa-extractive", "style-mosaic", "style-sketch", "vqa-blip"]
    for m in first.models():
        manifest = first.manifest(m, 1)
        assert first.resolve(m) == 1 and manifest["world"]["seed"] in (0, 1) and manifest["metrics"]["heldout"], m
    shutil.copytree(tiny_registry_template, tmp_path / "registry")
    assert bootstrap_tiny(Registry(tmp_path / "registry"), if_empty=True, show_progress=False) == []


@pytest.mark.parametrize("task", ["vqa", "qa", "qa-scratch", "style"])
def test_world_training_is_deterministic_under_its_seed(tmp_path: Path, task: str) -> None:
    """The same seed writes byte-identical weights (a few steps; the full run is the same code)."""
    from services.common.registry import sha256_file

    def build(out: Path) -> dict:
        out.mkdir()
        if task == "vqa":
            from services.vqa.build import build_tiny
            return build_tiny(out, seed=3, steps=3, warm_steps=2, train_scenes=40, heldout_examples=8)
        if task.startswith("qa"):  # "qa": what the bootstrap builds here (the pretrained encoder when installed)
            from services.qa.build import build_tiny
            return build_tiny(out, seed=3, steps=3, train_examples=40, heldout_examples=8,
                              encoder="scratch" if task == "qa-scratch" else None)
        from services.style.network import build_tiny
        return build_tiny(out, "sketch", seed=3, steps=2)

    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name), name
    assert a["heldout"] == b["heldout"]


def test_cli_models_commands(tmp_path: Path, tiny_registry_template: Path) -> None:
    import shutil
    shutil.copytree(tiny_registry_template, tmp_path / "registry")
    env = dict(os.environ, LOOPLINE_DATA_DIR=str(tmp_path))
    run = lambda *a: subprocess.run([sys.executable, "-m", "services.cli", "models", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    out = run("list", "--json")
    assert out.returncode == 0, out.stderr
    assert {r["model"] for r in json.loads(out.stdout)} >= {"vqa-blip", "qa-extractive"}
    assert run("promote", "vqa-blip", "1", "--alias", "canary", "--weight", "0.3").returncode == 0
    bad = run("rollback", "vqa-blip")
    assert bad.returncode == 1 and "no earlier production version" in bad.stderr
    assert run("verify").returncode == 0
    (tmp_path / "registry" / "qa-extractive" / "1" / "config.json").write_text("{}")
    ver = run("verify")
    assert ver.returncode == 1 and "config.json" in ver.stderr


def test_pull_offline_fails_with_one_sentence(tmp_path: Path) -> None:
    env = dict(os.environ, LOOPLINE_DATA_DIR=str(tmp_path))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "services.cli", "models", "pull", "qa-extractive"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "cannot be reached" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - t0 < 60


def test_bootstrap_progress_without_a_terminal_is_a_line_per_phase_and_tenth() -> None:
    """Container logs and CI have no terminal: the bar becomes a few readable lines."""
    import io

    from rich.console import Console

    from services.ops import bootstrap

    out = io.StringIO()
    report = bootstrap._line_progress("vqa-blip", Console(file=out, force_terminal=False, width=200))
    report("data", 0, 100, {"scenes": 10})
    for step in range(1, 101):
        report("answer", step, 100, {"loss": 0.5})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("vqa-blip: data 0/100 scenes 10")
    assert len(lines) == 12, lines  # the data line, the answer phase starting, then one per tenth
    assert lines[-1].startswith("vqa-blip: answer 100/100 loss 0.5")


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000\n", None), ("100000 100000\n", 1),
                                                   ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", None)])
def test_default_threads_respects_a_cgroup_cpu_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    """A Kubernetes CPU limit or compose `cpus` caps the threads; affinity alone does not show it."""
    import os

    from services.common.settings import default_threads

    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    cores = len(os.sched_getaffinity(0))
    assert default_threads(path) == (cores if expected is None else min(cores, expected))
    assert default_threads(tmp_path / "missing") == cores


def test_pull_accepts_the_seeds_hub_id_and_maps_it_to_the_model() -> None:
    """The seeds served Salesforce/blip-vqa-capfilt-large; `models pull` takes that id as it is."""
    from services.ops.bootstrap import resolve_pull

    assert resolve_pull("Salesforce/blip-vqa-capfilt-large")[::2] == ("vqa-blip", "Salesforce/blip-vqa-capfilt-large")
    assert resolve_pull("vqa-blip")[::2] == ("vqa-blip", "Salesforce/blip-vqa-base")
    assert resolve_pull("vqa-blip", "Salesforce/blip-vqa-capfilt-large")[2] == "Salesforce/blip-vqa-capfilt-large"
    assert resolve_pull("distilbert-base-cased-distilled-squad")[0] == "qa-extractive"
    with pytest.raises(ValueError, match="known hub ids: .*blip-vqa-capfilt-large"):
        resolve_pull("Salesforce/blip-vqa-capfilt-huge")


def test_bench_builds_no_invented_blip_large() -> None:
    from services.vqa.build import SIZES

    assert "large" not in SIZES and SIZES["base"]["vision"]["hidden_size"] == 768
