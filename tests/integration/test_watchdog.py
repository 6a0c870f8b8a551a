"""The watchdog over a real SQLite event store; the Jenkins trigger against a Jenkins stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.sqlite import SqliteEventStore
from services.common.settings import CommonSettings
from services.watchdog.service import Watchdog
from services.watchdog.settings import WatchdogSettings
from services.watchdog.triggers import DryRunTrigger, JenkinsTrigger, TriggerFailed
from tests.standins import jenkins_handler, serve

pytestmark = pytest.mark.integration


def _fill(store: SqliteEventStore, n: int, confidence: float, bad: int = 0) -> None:
    for i in range(n):
        rid = f"r{time.time_ns()}-{i}"
        store.record_inference(InferenceEvent(request_id=rid, task="qa", model="qa-extractive", version=1,
                                              latency_ms=10, confidence=confidence, status=200))
        if i < bad:
            store.record_feedback(FeedbackRecord(request_id=rid, rating="bad", correction="x", task="qa",
                                                 model="qa-extractive", version=1, sender=f"client:{i}"))


class CountingTrigger(DryRunTrigger):
    name = "counting"

    def __init__(self) -> None:
        self.fired: list[tuple[str, str]] = []

    def fire(self, model: str, reason: str) -> dict:
        self.fired.append((model, reason))
        return {"ok": True}


def test_low_confidence_fires_exactly_once_and_every_decision_is_recorded(data_dir: Path) -> None:
    common = CommonSettings(data_dir=data_dir)
    store = SqliteEventStore(common.state / "events.db")
    _fill(store, 30, confidence=0.4, bad=6)
    trigger = CountingTrigger()
    dog = Watchdog(common, WatchdogSettings(min_events=20, cooldown_s=3600), store, trigger)
    first = dog.run_once()
    assert [d["action"] for d in first if d["model"] == "qa-extractive"] == ["trigger"]
    assert "mean confidence" in trigger.fired[0][1] and "bad-feedback" in trigger.fired[0][1]
    for _ in range(5):
        dog.run_once()
    assert len(trigger.fired) == 1, "hysteresis: one bad window fires one job"
    restarted = Watchdog(common, WatchdogSettings(min_events=20, cooldown_s=3600), store, trigger)
    restarted.run_once()
    assert len(trigger.fired) == 1, "state (alerting, cooldown) survives a restart"
    events = store.events("watchdog")
    assert len(events) == 7 and events[0]["action"] == "trigger" and events[1]["action"] == "hold"


def test_jenkins_trigger_uses_crumb_and_build_with_parameters() -> None:
    jenkins = serve(jenkins_handler())
    try:
        settings = WatchdogSettings(trigger="jenkins", jenkins_url=jenkins.url, jenkins_user="watchdog",
                                    jenkins_token="jenkins-api-token")
        result = JenkinsTrigger(settings).fire("qa-extractive", "mean confidence 0.40 below 0.75")
        assert result["jenkins_job"] == "FineTuneModels" and isinstance(result["queue_id"], int)
        build = [r for r in jenkins.requests if r.path == "/job/FineTuneModels/buildWithParameters"]
        assert len(build) == 1 and build[0].method == "POST"
        assert build[0].query["MODEL"] == ["qa-extractive"] and "confidence" in build[0].query["REASON"][0]
        assert build[0].headers["jenkins-crumb"] == "c0ffee"
        assert any(r.path == "/crumbIssuer/api/json" for r in jenkins.requests)
    finally:
        jenkins.stop()


def test_jenkins_401_and_timeout_are_clear_failures_without_secrets() -> None:
    for mode, words in (("unauthorized", "refused"), ("slow", "did not answer")):
        jenkins = serve(jenkins_handler(mode=mode))
        try:
            settings = WatchdogSettings(trigger="jenkins", jenkins_url=jenkins.url, jenkins_user="watchdog",
                                        jenkins_token="jenkins-api-token", jenkins_timeout_s=0.5)
            t0 = time.monotonic()
            with pytest.raises(TriggerFailed) as info:
                JenkinsTrigger(settings).fire("qa-extractive", "why")
            assert words in str(info.value) and "jenkins-api-token" not in str(info.value)
            assert time.monotonic() - t0 < 5
        finally:
            jenkins.stop()


def test_failed_trigger_keeps_the_model_armed(data_dir: Path) -> None:
    common = CommonSettings(data_dir=data_dir)
    store = SqliteEventStore(common.state / "events.db")
    _fill(store, 25, confidence=0.3)
    jenkins = serve(jenkins_handler(mode="unauthorized"))
    try:
        settings = WatchdogSettings(trigger="jenkins", jenkins_url=jenkins.url, jenkins_user="watchdog",
                                    jenkins_token="wrong-token-value", min_events=20)
        dog = Watchdog(common, settings, store, JenkinsTrigger(settings))
        [decision] = dog.run_once()
        assert decision["action"] == "trigger-failed" and "refused" in decision["error"]
        assert dog.states["qa-extractive"].state == "ok", "not fired: the next pass tries again"
    finally:
        jenkins.stop()
