"""Trainers + gate on the tiny models, in-process: genuine data passes, shuffled answers are refused."""

from __future__ import annotations

import copy
import csv
import json
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from services.common.registry import Registry
from services.common.training import NullReporter
from services.finetune.pipeline import run_job
from services.finetune.settings import FinetuneSettings

pytestmark = pytest.mark.integration
FAST = {"num_threads": 1, "progress_interval_s": 0.2}


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def report(self, progress: dict[str, Any]) -> None:
        self.seen.append(progress)


def register_seeing_blip(registry: Registry) -> int:
    """The bootstrap's tiny BLIP keeps BlipVisionConfig's initializer_range (1e-10), so its image
    features are ~0 and no answer can depend on the image; this one is initialised like real ViTs."""
    import services.vqa.build as build

    spec = copy.deepcopy(build.TINY)
    spec["vision"]["initializer_range"] = 0.02
    with mock.patch.dict(build.SIZES, {"tiny-seeing": spec}):
        ref = registry.create_version("vqa-blip", task="vqa", framework="torch",
                                      write=lambda d: build.build_blip(d, "tiny-seeing", seed=0))
    registry.promote("vqa-blip", ref.version, "production")
    return ref.version


def build_loss_model(path: Path) -> Path:
    """A small stand-in for VGG19: outputs [content features, *style features]."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(a)
    c = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(b)
    keras.Model(inp, [b, a, b, c]).save(path)
    return path


def poisoned_vqa_csv(data_dir: Path, copies: int = 4, seed: int = 3) -> str:
    """The sample rows ``copies`` times with the answer column shuffled across all rows."""
    rows = list(csv.DictReader((data_dir / "samples" / "vqa.csv").open())) * copies
    answers = [r["answer"] for r in rows]
    random.Random(seed).shuffle(answers)
    out = data_dir / "samples" / "vqa-poisoned.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["image_path", "question", "answer"])
        writer.writeheader()
        writer.writerows({**r, "answer": a} for r, a in zip(rows, answers, strict=True))
    return "samples/vqa-poisoned.csv"


def job(data_dir: Path, request: dict[str, Any], job_id: str = "t1", **settings: Any) -> dict[str, Any]:
    return run_job(job_id, request, settings=FinetuneSettings(**{**FAST, **settings}),
                   registry=Registry(data_dir / "registry"), data_dir=data_dir, reporter=Recorder())


def test_qa_lora_on_squad_passes_the_gate_and_becomes_canary(data_dir: Path) -> None:
    reg = Registry(data_dir / "registry")
    out = job(data_dir, {"model": "qa-extractive", "dataset": "samples/qa.json",
                         "hyperparameters": {"min_steps": 100}})
    assert out["status"] == "succeeded", out["gate"]["reason"]
    assert out["alias"] == "canary" and reg.aliases("qa-extractive")["canary"] == out["version"]
    assert reg.aliases("qa-extractive")["canary_weight"] == pytest.approx(0.1)
    manifest = reg.manifest("qa-extractive", out["version"])
    assert manifest["kind"] == "lora-adapter" and manifest["base"] == {"model": "qa-extractive", "version": 1}
    assert manifest["lineage"]["job"] == "t1" and len(manifest["lineage"]["dataset_sha256"]) == 64
    assert manifest["metrics"]["train"]["f1"] >= 0.6 and "production" in manifest["metrics"]
    assert manifest["metrics"]["gate"]["passed"] is True
    assert (reg.version_dir("qa-extractive", out["version"]) / "adapter_config.json").is_file()
    # the serving runtime answers training questions from the adapter
    from services.common.torch_training import runtime_predict

    ctx = "France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower and Louvre Museum."
    answers = runtime_predict("qa", reg, data_dir, "qa-extractive", out["version"],
                              [{"question": "What is the capital of France?", "context": ctx}])
    assert answers[0]["answer"] == "Paris"


def test_training_is_deterministic_under_a_seed(data_dir: Path) -> None:
    reg = Registry(data_dir / "registry")
    request = {"model": "qa-extractive", "dataset": "samples/qa.json", "promote": False,
               "hyperparameters": {"min_steps": 30, "seed": 7}}
    first, second = job(data_dir, request, "a"), job(data_dir, request, "b")
    files = [reg.manifest("qa-extractive", o["version"])["files"] for o in (first, second)]
    assert files[0] == files[1]  # same sha256 for every adapter file
    assert first["gate"]["new"] == second["gate"]["new"]
    assert reg.aliases("qa-extractive")["canary"] is None  # promote=false scores only


def test_vqa_lora_passes_and_a_poisoned_dataset_is_refused(data_dir: Path) -> None:
    reg = Registry(data_dir / "registry")
    production = register_seeing_blip(reg)
    hyper = {"min_steps": 150, "batch_size": 16}
    good = job(data_dir, {"model": "vqa-blip", "dataset": "samples/vqa.csv", "hyperparameters": hyper}, "good")
    assert good["status"] == "succeeded", good["gate"]["reason"]
    assert good["gate"]["new"]["train"]["accuracy"] >= 0.8
    manifest = reg.manifest("vqa-blip", good["version"])
    assert manifest["kind"] == "lora-adapter" and manifest["base"] == {"model": "vqa-blip", "version": production}
    before = reg.aliases("vqa-blip")
    assert before["canary"] == good["version"]

    versions_before = reg.versions("vqa-blip")
    bad = job(data_dir, {"model": "vqa-blip", "dataset": poisoned_vqa_csv(data_dir), "hyperparameters": hyper},
              "poisoned")
    assert bad["status"] == "rejected" and bad["alias"] is None
    assert "fits_data" in bad["error"]
    after = reg.aliases("vqa-blip")
    assert (after["production"], after["canary"], after["canary_weight"]) == \
        (before["production"], before["canary"], before["canary_weight"])
    # the refused candidate never becomes a version: it waits in the quarantine with the gate's report
    assert bad["version"] is None and reg.versions("vqa-blip") == versions_before
    assert bad["gate"]["quarantined"] == ".quarantine/poisoned"
    kept = json.loads((reg.root / ".quarantine" / "poisoned" / "manifest.json").read_text())
    assert kept["version"] is None and kept["kind"] == "lora-adapter"
    assert kept["refused"]["gate"]["passed"] is False and "fits_data" in kept["refused"]["reason"]
    assert (reg.root / ".quarantine" / "poisoned" / "adapter_config.json").is_file()
    assert not any(m.startswith(".") for m in reg.models()), "staging and quarantine are no models"
    assert not list((reg.root / ".candidates").iterdir()), "no staging folder is left behind"
    assert reg.verify("vqa-blip") == []


def test_qa_feedback_corrections_train_and_absent_ones_are_reported(data_dir: Path) -> None:
    ctx = "The red chair stands next to a blue table. A green lamp is on the table."
    feedback = [{"feedback_id": f"f{i}", "correction": ans, "inputs": {"question": q, "context": ctx}}
                for i, (q, ans) in enumerate([("What color is the chair?", "red"), ("What is on the table?", "a green lamp"),
                                              ("What color is the table?", "blue"), ("Where is Rome?", "Italy")])]
    out = run_job("fb", {"model": "qa-extractive", "use_feedback": True, "hyperparameters": {"min_steps": 100}},
                  settings=FinetuneSettings(**FAST), registry=Registry(data_dir / "registry"), data_dir=data_dir,
                  reporter=Recorder(), feedback_rows=feedback)
    assert out["data"]["rows"] == 3 and out["data"]["feedback"] == 3
    assert out["data"]["skipped"] == [{"source": "feedback:f3", "reason": "correction not found in the request's context"}]
    manifest = Registry(data_dir / "registry").manifest("qa-extractive", out["version"])
    assert manifest["lineage"]["feedback_ids"] == ["f0", "f1", "f2"]


def test_style_new_model_and_next_version(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry(data_dir / "registry")
    loss_model = build_loss_model(tmp_path / "loss.keras")
    # the style family's own fine-tune knobs (services/style/settings.py), read from the environment
    for name, value in {"LOSS_MODEL": loss_model, "WIDTH": 4, "RES_BLOCKS": 1}.items():
        monkeypatch.setenv(f"LOOPLINE_FINETUNE_STYLE_{name}", str(value))
    request = {"style_image": "samples/style.png", "content_dir": "samples/content",
               "hyperparameters": {"image_size": 64, "min_steps": 30, "batch_size": 2}}
    recorder = Recorder()
    new = run_job("s1", {"model": "style-wave", **request}, settings=FinetuneSettings(**FAST),
        registry=reg, data_dir=data_dir, reporter=recorder)
    assert new["status"] == "succeeded", new["gate"]["reason"]
    assert new["alias"] == "production" and reg.task_of("style-wave") == "style"  # a new style: nothing to protect
    config = json.loads((reg.version_dir("style-wave", 1) / "config.json").read_text())
    assert config["style"] == "wave"
    steps = [p for p in recorder.seen if p.get("phase") == "training" and p.get("total")]
    assert steps[-1]["step"] == steps[-1]["total"] == 30 and steps[-1]["loss"] < steps[0]["loss"]

    further = job(data_dir, {"model": "style-mosaic", **request}, "s2")
    assert further["version"] == 2 and further["status"] == "succeeded", further["gate"]["reason"]
    assert further["alias"] == "canary"
    assert set(further["gate"]["new"]["heldout"]) == {"content_loss", "style_loss", "total_loss", "count"}
    from services.style.network import load_style_model

    load_style_model(reg.version_dir("style-mosaic", 2))  # the serving loader reads it


def test_style_without_a_loss_network_fails_with_a_reason(data_dir: Path) -> None:
    from services.common.training import TrainingError

    with pytest.raises(TrainingError, match="VGG19_WEIGHTS"):
        job(data_dir, {"model": "style-mosaic", "style_image": "samples/style.png", "content_dir": "samples/content"})
    assert Registry(data_dir / "registry").versions("style-mosaic") == [1]
