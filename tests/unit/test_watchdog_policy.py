from __future__ import annotations

import pytest

from services.watchdog.policy import ModelState, breaches, combine, decide
from services.watchdog.settings import WatchdogSettings

pytestmark = pytest.mark.unit
P = WatchdogSettings(min_events=10, min_confidence=0.75, max_bad_feedback_rate=0.3, min_feedback=3,
                     cooldown_s=600, recovery_margin=0.05)
GOOD = {"count": 50, "mean_confidence": 0.9, "error_rate": 0.0, "latency_p95_ms": 100, "feedback_count": 10,
        "bad_feedback_rate": 0.1, "feedback_senders": 10, "bad_feedback_senders": 1}
BAD = {**GOOD, "mean_confidence": 0.6}


def test_breaches_name_each_threshold() -> None:
    assert breaches(GOOD, P) == []
    found = breaches({**GOOD, "mean_confidence": 0.5, "bad_feedback_senders": 8, "error_rate": 0.5,
                      "latency_p95_ms": 99_999}, P)
    assert len(found) == 4 and "confidence" in found[0]
    assert breaches({**GOOD, "bad_feedback_senders": 9, "feedback_count": 2}, P) == [], "too few ratings to judge"


def test_a_flood_from_one_sender_counts_once() -> None:
    flood = {**GOOD, "feedback_count": 400, "bad_feedback_rate": 1.0, "feedback_senders": 1, "bad_feedback_senders": 1}
    assert breaches(flood, P) == [], "one client cannot trigger retraining"
    many = {**flood, "feedback_senders": 4, "bad_feedback_senders": 3}
    (found,) = breaches(many, P)
    assert "0.75" in found and "4 senders" in found


def test_one_bad_hour_fires_once_then_holds_until_recovery_and_cooldown() -> None:
    state = ModelState()
    actions = []
    for minute in range(60):
        d = decide("m", BAD, state, P, now=minute * 60.0)
        if d.action == "trigger":
            state.state, state.last_fired_at = "alerting", minute * 60.0
        actions.append(d.action)
    assert actions.count("trigger") == 1 and actions[0] == "trigger" and set(actions[1:]) == {"hold"}
    # barely above the threshold is not recovery (hysteresis)
    assert decide("m", {**GOOD, "mean_confidence": 0.77}, state, P, now=4000).action == "hold"
    assert decide("m", GOOD, state, P, now=4100).action == "recovered" and state.state == "ok"
    assert decide("m", BAD, state, P, now=4200).action == "trigger", "cooldown (600 s) is over"


def test_cooldown_blocks_a_quick_second_trigger() -> None:
    state = ModelState(state="ok", last_fired_at=1000.0)
    d = decide("m", BAD, state, P, now=1200.0)
    assert d.action == "hold" and "cooldown" in d.reasons[0]


def test_not_enough_events_is_no_judgement() -> None:
    assert decide("m", {**BAD, "count": 3}, ModelState(), P, now=0).action == "insufficient-data"


def test_combine_weights_by_count() -> None:
    rows = [{"count": 10, "error_rate": 0.0, "mean_confidence": 0.5, "latency_p95_ms": 10, "feedback_count": 2,
             "bad_feedback_rate": 1.0},
            {"count": 30, "error_rate": 0.1, "mean_confidence": 0.9, "latency_p95_ms": 30, "feedback_count": 2,
             "bad_feedback_rate": 0.0}]
    c = combine(rows)
    assert c["count"] == 40 and c["mean_confidence"] == pytest.approx(0.8) and c["error_rate"] == pytest.approx(0.075)
    assert c["latency_p95_ms"] == 30 and c["bad_feedback_rate"] == pytest.approx(0.5)


def test_jenkins_trigger_needs_credentials() -> None:
    with pytest.raises(ValueError):
        WatchdogSettings(trigger="jenkins", jenkins_url="http://j")
