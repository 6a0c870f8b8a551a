"""Who sent a correction, throttling, trust states (quorum, review), keys and the per-slice gate."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.sqlite import SqliteEventStore
from services.common.keys import KeyStore
from services.common.trust import groups, latest_reviews, record_review, resolve
from services.finetune.gate import GatePolicy, decide
from services.gateway.senders import FeedbackThrottle, Sender, TokenBuckets

pytestmark = pytest.mark.unit


def _row(fid: str, sender: str, correction: str = "blue", served: str = "red", role: str = "anonymous",
         trust: str = "pending") -> dict:
    return {"feedback_id": fid, "sender": sender, "sender_role": role, "trust": trust, "model": "vqa-blip",
            "correction": correction, "output": {"answer": served}, "inputs": {"question": "colour?"}, "ts": 1.0}


def test_quorum_needs_distinct_anonymous_senders() -> None:
    rows = [_row("a", "client:x"), _row("b", "client:x"), _row("c", "client:y")]
    assert {s["state"] for s in resolve(rows, {}, 3).values()} == {"pending"}, "two senders are not three"
    rows.append(_row("d", "client:z", correction=" Blue "))  # same group: case and spacing ignored
    states = resolve(rows, {}, 3)
    assert all(s["state"] == "accepted" and s["by"] == "quorum of 3 senders" for s in states.values())
    assert resolve(rows + [_row("e", "client:w", served="green")], {}, 3)["e"]["state"] == "pending", \
        "another served answer is another group"


def test_keys_accept_and_the_latest_review_wins() -> None:
    rows = [_row("a", "key:alice", role="reviewer", trust="accepted"), _row("b", "client:x")]
    states = resolve(rows, {}, 3)
    assert states["a"] == {"state": "accepted", "by": "key:alice"} and states["b"]["state"] == "pending"
    reviews = {"a": {"action": "reject", "by": "key:bob"}, "b": {"action": "accept", "by": "key:bob"}}
    states = resolve(rows, reviews, 3)
    assert states["a"]["state"] == "rejected" and states["b"]["state"] == "accepted"
    (group,) = groups([rows[1]], states)
    assert group["distinct_senders"] == 1 and group["states"]["accepted"] == 1


def test_reviews_are_an_audit_trail_and_rejected_rows_leave_the_quorum(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        record_review(store, "accept", ["a"], "key:alice", "looked right")
        record_review(store, "reject", ["a", "b"], "gate:job1", "refused")
        latest = latest_reviews(store)
        assert latest["a"]["by"] == "gate:job1" and latest["b"]["action"] == "reject"
        rows = [_row("a", "client:x"), _row("b", "client:y"), _row("c", "client:z")]
        assert resolve(rows, latest, 3)["c"]["state"] == "pending", "rejected corrections do not count to quorum"
        (audit,) = [e for e in store.events("feedback_review") if e["by"] == "key:alice"]
        assert audit["reason"] == "looked right" and audit["ts"] > 0
    finally:
        store.close()


def test_sender_is_stored_and_an_old_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE feedback (feedback_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL, "
                "rating TEXT NOT NULL, correction TEXT, comment TEXT, task TEXT, model TEXT, version INTEGER)")
    old.execute("INSERT INTO feedback VALUES ('old', 'r0', ?, 'bad', 'x', NULL, 'qa', 'qa-extractive', 1)",
                (time.time(),))
    old.commit()
    old.close()
    store = SqliteEventStore(path)
    try:
        store.record_inference(InferenceEvent(request_id="r1", task="qa", model="qa-extractive", version=1,
                                              latency_ms=1, status=200, output={"answer": "Ada"}))
        store.record_feedback(FeedbackRecord(request_id="r1", rating="bad", correction="Bob", task="qa",
                                             model="qa-extractive", version=1, sender="client:x"))
        rows = {r["request_id"]: r for r in store.feedback()}
        assert rows["r1"]["sender"] == "client:x" and rows["r1"]["trust"] == "pending"
        assert rows["r0"]["sender"] is None and rows["r0"]["sender_role"] == "anonymous"
        (summary,) = [r for r in store.summary(window_s=1e9) if r["version"] == 1]
        assert summary["feedback_senders"] == 2 and summary["bad_feedback_senders"] == 2
    finally:
        store.close()


def test_keys_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    key = keys.create("alice", "reviewer")
    stored = (tmp_path / "api_keys.json").read_text()
    assert key not in stored and json.loads(stored)["keys"][0]["role"] == "reviewer"
    assert (tmp_path / "api_keys.json").stat().st_mode & 0o077 == 0
    assert keys.lookup(key).sender == "key:alice" and keys.lookup(key + "x") is None
    with pytest.raises(ValueError):
        keys.create("alice", "reviewer")
    with pytest.raises(ValueError):
        keys.create("bob", "superuser")
    assert keys.revoke("alice") and KeyStore(tmp_path).lookup(key) is None
    assert "sha256" not in keys.list()[0]


def test_token_buckets_refuse_a_burst_then_refill() -> None:
    buckets = TokenBuckets(rate_per_min=60, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == pytest.approx(1.0)
    assert buckets.take("b", now=0.0) == 0.0, "buckets are per key"
    assert buckets.take("a", now=1.5) == 0.0


def test_the_throttle_checks_sender_then_address_and_spares_key_holders() -> None:
    throttle = FeedbackThrottle(sender_rate=1, sender_burst=2, address_rate=1, address_burst=3)
    flood = Sender("client:f", "anonymous", "10.0.0.1")
    results = [throttle.check(flood) for _ in range(5)]
    assert results[:2] == [None, None] and results[2][0] == "sender" and results[2][1] > 1
    assert throttle.check(Sender("client:g", "anonymous", "10.0.0.1")) is None, "refused calls spend no address budget"
    assert throttle.check(Sender("client:h", "anonymous", "10.0.0.1"))[0] == "address"
    assert throttle.check(Sender("key:alice", "reviewer", "10.0.0.1")) is None


def _scores(acc: float, slices: dict[str, tuple[float, int]]) -> dict:
    return {"accuracy": acc, "count": 10, "rows": {"accuracy": [acc] * 10},
            "world": {"accuracy": acc, "count": 240,
                      "slices": {k: {"score": s, "count": n} for k, (s, n) in slices.items()}}}


def test_the_gate_refuses_a_version_that_empties_one_slice() -> None:
    prod = {"heldout": _scores(0.9, {"answer=red": (0.9, 10), "answer=blue": (0.8, 6), "kind=color": (0.9, 37)})}
    liar = {"heldout": _scores(0.9, {"answer=red": (0.1, 10), "answer=blue": (0.0, 6), "kind=color": (0.7, 37)}),
            "train": {"accuracy": 1.0}}
    decision = decide("vqa", liar, prod, GatePolicy(world_tolerance=0.5))
    assert not decision.passed
    (check,) = [c for c in decision.checks if c["name"] == "slices"]
    assert "slice answer=red: accuracy 0.10 vs production 0.90 (10 items)" in decision.reason
    assert "answer=blue" not in check["detail"], "a slice with too few items is not judged"
    # kind=color loses 20 points over 37 items: within 10 points + sampling noise (1.645 standard errors)
    assert [s["slice"] for s in check["slices"] if not s["passed"]] == ["answer=red"]
    honest = {"heldout": _scores(0.9, {"answer=red": (0.8, 10), "kind=color": (0.85, 37)}),
              "train": {"accuracy": 1.0}}
    assert decide("vqa", honest, prod, GatePolicy()).passed, "10 points on a slice is allowed"


def test_the_slice_check_allows_sampling_noise_but_not_an_emptied_slice() -> None:
    """Measured in the drift scenario: an honest job cost 'three' 0.95 -> 0.80 over 20 items; a
    colluding lie took 'red' 1.00 -> 0.00. One answer in twenty is noise, an emptied slice is not."""
    prod = {"heldout": _scores(0.95, {"answer=three": (0.95, 20), "answer=red": (1.0, 40)})}
    honest = {"heldout": _scores(0.93, {"answer=three": (0.80, 20), "answer=red": (1.0, 40)}), "train": {"accuracy": 1.0}}
    assert decide("vqa", honest, prod, GatePolicy()).passed
    lie = {"heldout": _scores(0.93, {"answer=three": (0.95, 20), "answer=red": (0.0, 40)}), "train": {"accuracy": 1.0}}
    decision = decide("vqa", lie, prod, GatePolicy(world_tolerance=0.5))
    assert not decision.passed and "slice answer=red: accuracy 0.00 vs production 1.00 (40 items)" in decision.reason
    # a large slice has little noise: 15 points over 400 items is refused
    big_prod = {"heldout": _scores(0.95, {"kind=count": (0.95, 400)})}
    big_new = {"heldout": _scores(0.95, {"kind=count": (0.80, 400)}), "train": {"accuracy": 1.0}}
    assert not decide("vqa", big_new, big_prod, GatePolicy(world_tolerance=0.5)).passed


class _Registry:
    """Two versions of one model; v2 trained on corrections a and b and serves as canary."""

    def models(self) -> list[str]:
        return ["vqa-blip"]

    def versions(self, model: str) -> list[int]:
        return [1, 2]

    def aliases(self, model: str) -> dict:
        return {"production": 1, "canary": 2}

    def manifest(self, model: str, version: int) -> dict:
        return {"lineage": {"feedback_ids": ["a", "b"] if version == 2 else []}}


def test_reject_sender_rejects_all_it_sent_and_names_the_versions_trained_on_it(tmp_path: Path) -> None:
    from services.common.trust import reject_sender

    store = SqliteEventStore(tmp_path / "events.db")
    try:
        for fid, sender in (("a", "client:liar"), ("b", "client:ok"), ("c", "client:liar")):
            store.record_inference(InferenceEvent(request_id=f"r{fid}", task="vqa", model="vqa-blip", version=1,
                                                  latency_ms=1, status=200, output={"answer": "red"}))
            store.record_feedback(FeedbackRecord(feedback_id=fid, request_id=f"r{fid}", rating="bad",
                                                 correction="blue", model="vqa-blip", version=1, sender=sender))
        out = reject_sender(store, _Registry(), "client:liar", "cli:tester")
        assert out["rejected"] == 2 and out["versions"] == [
            {"model": "vqa-blip", "version": 2, "corrections": 1, "aliases": ["canary"]}]
        states = resolve(store.feedback(with_correction=True), latest_reviews(store), 3)
        assert [states[f]["state"] for f in "abc"] == ["rejected", "pending", "rejected"]
        (audit,) = store.events("feedback_review")
        assert audit["by"] == "cli:tester" and audit["sender"] == "client:liar"
    finally:
        store.close()
