"""A trained candidate is scored before it has a version: passing ones are published with the next
number, refused ones never become a version (quarantined with a retention rule, or deleted), and a
job killed mid-way leaves only a staging folder that the next start removes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.common.registry import Registry
from services.common.runtime import ModelRuntime
from services.common.training import Trained
from services.finetune.candidate import (
    CANDIDATE,
    CandidateView,
    prune_quarantine,
    publish,
    quarantine,
    quarantined,
    staged,
    write_candidate,
)

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path / "registry")
    ref = reg.create_version("vqa-blip", task="vqa", framework="torch",
                             write=lambda d: (d / "model.safetensors").write_bytes(b"base weights"))
    reg.promote("vqa-blip", ref.version, "production")
    return reg


def _adapter(payload: bytes) -> Trained:
    def write(out: Path) -> None:
        (out / "adapter_model.safetensors").write_bytes(payload)
        (out / "adapter_config.json").write_text("{}")

    return Trained(write=write, kind="lora-adapter", framework="torch", base={"model": "vqa-blip", "version": 1},
                   parent_version=1)


def test_a_passing_candidate_is_scored_in_staging_then_published_with_the_next_number(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    with staged(reg, "job-a") as folder:
        write_candidate(folder, "vqa-blip", "vqa", "job-a", _adapter(b"learned"))
        view = CandidateView(reg, "vqa-blip", folder)
        # the gate reads the candidate as CANDIDATE and every published version as usual
        assert view.version_dir("vqa-blip", CANDIDATE) == folder
        manifest = view.manifest("vqa-blip", CANDIDATE)
        assert manifest["version"] is None and manifest["kind"] == "lora-adapter"
        assert ModelRuntime.base_dir(folder, manifest) == reg.version_dir("vqa-blip", 1)
        assert view.manifest("vqa-blip", 1)["version"] == 1
        assert reg.versions("vqa-blip") == [1], "a candidate under evaluation is no version"
        ref = publish(reg, folder, lineage={"job": "job-a"}, metrics={"gate": {"passed": True}}, extra={})
    assert ref.version == 2 and reg.versions("vqa-blip") == [1, 2]
    published = reg.manifest("vqa-blip", 2)
    assert published["base"] == {"model": "vqa-blip", "version": 1} and published["lineage"]["job"] == "job-a"
    assert published["metrics"]["gate"]["passed"] is True
    assert (reg.version_dir("vqa-blip", 2) / "adapter_model.safetensors").read_bytes() == b"learned"
    assert reg.verify() == []
    assert not list((reg.root / ".candidates").iterdir()), "the staging folder is gone"


def test_a_refused_candidate_never_becomes_a_version_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    kept = []
    for job in ("j1", "j2", "j3"):
        with staged(reg, job) as folder:
            write_candidate(folder, "vqa-blip", "vqa", job, _adapter(job.encode()))
            kept.append(quarantine(reg, folder, job, {"reason": "gate refused: slice answer=red"}, keep=2))
    assert kept[-1] == reg.root / ".quarantine" / "j3"
    assert [p.name for p in quarantined(reg)] == ["j2", "j3"], "the oldest beyond the retention is deleted"
    manifest = json.loads((kept[-1] / "manifest.json").read_text())
    assert manifest["version"] is None and manifest["refused"]["reason"] == "gate refused: slice answer=red"
    assert (kept[-1] / "adapter_model.safetensors").read_bytes() == b"j3"
    assert reg.versions("vqa-blip") == [1] and reg.models() == ["vqa-blip"]
    assert reg.aliases("vqa-blip")["canary"] is None
    # keep=0: the refused weights are deleted at once
    with staged(reg, "j4") as folder:
        write_candidate(folder, "vqa-blip", "vqa", "j4", _adapter(b"lie"))
        assert quarantine(reg, folder, "j4", {"reason": "refused"}, keep=0) is None
    assert not (reg.root / ".quarantine" / "j4").exists()
    assert not list((reg.root / ".candidates").iterdir())
    assert [p.name for p in prune_quarantine(reg, 0)] == ["j2", "j3"] and quarantined(reg) == []


def test_a_job_killed_while_its_candidate_is_staged_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from services.common.registry import Registry
        from services.finetune.candidate import staged
        with staged(Registry(Path({str(reg.root)!r})), "killed") as folder:
            (folder / "adapter_model.safetensors").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        """)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in (reg.root / ".candidates").iterdir() if not p.name.endswith(".writer")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-killed-")
    assert reg.versions("vqa-blip") == [1]
    assert leftovers[0] in reg.clean_partial()  # what the fine-tune service does at start
    assert not list((reg.root / ".candidates").iterdir()) and reg.verify() == []
    assert os.listdir(reg.root / "vqa-blip") and reg.versions("vqa-blip") == [1]
