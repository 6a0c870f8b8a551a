"""Fine-tune logic without training: scores, gate policy, data rows, queue, token, Job spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.errors import Conflict, Invalid
from services.common.scores import exact_match, f1_score, qa_scores
from services.finetune.autopromote import judge
from services.finetune.data import feedback_dataset, split_holdout
from services.finetune.gate import GatePolicy, decide
from services.finetune.settings import FinetuneSettings
from services.finetune.store import JobStore
from services.qa.data import locate_answer

pytestmark = pytest.mark.unit


def test_squad_scores() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert f1_score("green lamp on it", "A green lamp") == pytest.approx(2 * (2 / 4) * 1.0 / (2 / 4 + 1.0))
    assert qa_scores(["Paris", "x"], ["paris", "Europe"])["exact_match"] == 0.5


def _scores(metric: str, rows: list[float]) -> dict:
    return {metric: sum(rows) / len(rows), "rows": {metric: rows}}


def test_gate_refuses_a_version_that_cannot_fit_its_data() -> None:
    new = {"heldout": _scores("accuracy", [1, 0, 0, 0]), "train": {"accuracy": 0.3}}
    prod = {"heldout": _scores("accuracy", [0, 0, 0, 0])}
    decision = decide("vqa", new, prod, GatePolicy())
    assert not decision.passed
    assert "fits_data" in decision.reason and "0.3000" in decision.reason


def test_gate_holds_the_world_of_a_world_model() -> None:
    """A fine-tune that learns its new rows but forgets its world (beyond the tolerance) is refused."""
    def held(new_rows: list[float], world: float) -> dict:
        return {**_scores("accuracy", new_rows), "world": {"accuracy": world, "count": 240}}

    prod = {"heldout": held([0.0] * 8, world=0.85)}
    learnt = {"heldout": held([1.0] * 8, world=0.82), "train": {"accuracy": 1.0}}
    assert decide("vqa", learnt, prod, GatePolicy()).passed
    forgot = {"heldout": held([1.0] * 8, world=0.78), "train": {"accuracy": 1.0}}
    decision = decide("vqa", forgot, prod, GatePolicy())
    assert not decision.passed and "keeps_world" in decision.reason and "0.7800" in decision.reason
    no_world = {"heldout": _scores("accuracy", [1.0] * 8), "train": {"accuracy": 1.0}}
    assert [c["name"] for c in decide("vqa", no_world, {"heldout": _scores("accuracy", [0.0] * 8)},
                                      GatePolicy()).checks] == ["no_worse", "fits_data"]


def test_gate_refuses_a_version_clearly_worse_than_production() -> None:
    new = {"heldout": _scores("f1", [0.0] * 10), "train": {"f1": 1.0}}
    prod = {"heldout": _scores("f1", [1.0] * 10)}
    decision = decide("qa", new, prod, GatePolicy())
    assert not decision.passed and "no_worse" in decision.reason


def test_gate_does_not_read_noise_on_one_row_as_a_regression() -> None:
    new = {"heldout": _scores("f1", [0.0]), "train": {"f1": 0.9}}
    prod = {"heldout": _scores("f1", [0.33])}
    assert decide("qa", new, prod, GatePolicy()).passed


def test_gate_min_improvement_and_style_direction() -> None:
    new = {"heldout": _scores("f1", [0.5] * 4), "train": {"f1": 0.9}}
    prod = {"heldout": _scores("f1", [0.5] * 4)}
    assert not decide("qa", new, prod, GatePolicy(min_improvement=0.1)).passed
    style_new = {"heldout": _scores("total_loss", [2.0, 2.0]), "train": {"initial_loss": 3.0, "final_loss": 1.0}}
    style_prod = {"heldout": _scores("total_loss", [1.0, 1.0])}
    assert not decide("style", style_new, style_prod, GatePolicy()).passed  # loss doubled
    assert decide("style", style_prod | {"train": style_new["train"]}, style_new, GatePolicy()).passed


def test_split_is_seeded_and_keeps_a_row_on_each_side() -> None:
    rows = [{"i": i} for i in range(10)]
    assert split_holdout(rows, 0.2, 1) == split_holdout(rows, 0.2, 1)
    train, held = split_holdout(rows, 0.2, 1)
    assert len(held) == 2 and len(train) == 8 and not {r["i"] for r in held} & {r["i"] for r in train}
    with pytest.raises(Invalid):
        split_holdout(rows[:1], 0.2, 1)


def test_qa_corrections_are_located_in_the_context_or_reported(tmp_path: Path) -> None:
    assert locate_answer("The red chair.", "RED") == {"answer": "red", "answer_start": 4}
    rows = [
        {"feedback_id": "f1", "correction": "Paris", "inputs": {"question": "capital?", "context": "It is Paris."}},
        {"feedback_id": "f2", "correction": "Rome", "inputs": {"question": "capital?", "context": "It is Paris."}},
        {"feedback_id": "f3", "correction": "", "inputs": {}},
    ]
    data = feedback_dataset("qa", tmp_path, rows)
    assert [r["answer"] for r in data.rows] == ["Paris"] and data.rows[0]["answer_start"] == 6
    assert data.feedback_ids == ["f1"]
    assert {s["source"]: s["reason"] for s in data.skipped} == {
        "feedback:f2": "correction not found in the request's context", "feedback:f3": "no correction"}


def test_vqa_corrections_need_an_image_inside_the_data_root(tmp_path: Path) -> None:
    (tmp_path / "state" / "uploads").mkdir(parents=True)
    (tmp_path / "state" / "uploads" / "a.png").write_bytes(b"png")
    rows = [{"feedback_id": "ok", "correction": "red", "inputs": {"question": "color?", "image_path": "state/uploads/a.png"}},
            {"feedback_id": "bad", "correction": "red", "inputs": {"question": "color?", "image_path": "../../etc/passwd"}}]
    data = feedback_dataset("vqa", tmp_path, rows)
    assert [r["answer"] for r in data.rows] == ["red"]
    assert data.skipped[0]["source"] == "feedback:bad"


def test_queue_claims_in_order_cancels_and_reports_interrupted(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "finetune.db")
    a = store.create(model="qa-extractive", task="qa", runner="embedded", request={"n": 1})
    b = store.create(model="qa-extractive", task="qa", runner="embedded", request={"n": 2})
    assert store.claim_next().id == a.id
    assert store.request_cancel(b.id).status == "cancelled"
    assert store.claim_next() is None
    assert [j.id for j in JobStore(tmp_path / "finetune.db").interrupted()] == [a.id]  # survives a reopen
    assert store.request_cancel(a.id).cancel_requested
    store.finish(a.id, "cancelled", error="stopped")
    with pytest.raises(Conflict):
        store.request_cancel(a.id)


def test_auto_promotion_needs_traffic_and_no_worse_quality() -> None:
    prod = {"count": 100, "mean_confidence": 0.8, "bad_feedback_rate": 0.1}
    assert judge({"count": 3, "mean_confidence": 0.9}, prod, 20, 0.02)[0] is None
    assert judge({"count": 30, "mean_confidence": 0.7, "bad_feedback_rate": 0.0}, prod, 20, 0.02)[0] is False
    assert judge({"count": 30, "mean_confidence": 0.81, "bad_feedback_rate": 0.2}, prod, 20, 0.02)[0] is False
    assert judge({"count": 30, "mean_confidence": 0.79, "bad_feedback_rate": 0.11}, prod, 20, 0.02)[0] is True


def test_kubernetes_job_spec_passes_strict_validation(tmp_path: Path) -> None:
    from services.finetune.kube import build_job_manifest

    assert "imagePullSecrets" not in build_job_manifest(FinetuneSettings(), "ft-1", "m")["spec"]["template"]["spec"]
    settings = FinetuneSettings(kube_node_selector={"pool": "training"}, kube_service_account="trainer",
                                kube_image_pull_secret="registry-credentials")
    manifest = build_job_manifest(settings, "ft-0123456789ab", "qa-extractive")
    spec = manifest["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}], "a private registry's Secret reaches Jobs"
    assert manifest["metadata"]["namespace"] == "loopline-training"
    assert spec["containers"][0]["command"] == ["loopline", "finetune", "execute", "ft-0123456789ab"]
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "loopline-data"
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "6Gi"}
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(manifest))
    tool = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(tool), "--strict", str(path)], capture_output=True, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
