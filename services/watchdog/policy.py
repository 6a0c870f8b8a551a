"""The quality policy, pure logic: breaches, hysteresis and cooldown.

A model in state ``ok`` that breaches (with enough events) fires once and goes to
``alerting``; it fires again only after it has recovered past the thresholds by the
recovery margin (hysteresis) *and* the cooldown since its last trigger has passed. So a
bad hour fires one job, not sixty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .settings import WatchdogSettings


@dataclass
class ModelState:
    state: str = "ok"  # ok | alerting
    last_fired_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "last_fired_at": self.last_fired_at}


@dataclass
class Decision:
    model: str
    action: str  # trigger | hold | ok | insufficient-data | recovered
    reasons: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def breaches(stats: dict[str, Any], p: WatchdogSettings, margin: float = 0.0) -> list[str]:
    """Threshold breaches; with ``margin`` > 0 the thresholds are tightened (recovery test)."""
    found = []
    conf = stats.get("mean_confidence")
    if conf is not None and conf < p.min_confidence + margin:
        found.append(f"mean confidence {conf:.3f} below {p.min_confidence + margin:.3f}")
    n_fb = stats.get("feedback_count") or 0
    senders, bad_senders = stats.get("feedback_senders"), stats.get("bad_feedback_senders") or 0
    # one vote per sender: a flood from one client (or one reviewer) counts once
    bad = bad_senders / senders if senders else None
    if (bad is not None and n_fb >= p.min_feedback and senders >= p.min_feedback_senders
            and bad > p.max_bad_feedback_rate - margin):
        found.append(f"bad-feedback rate {bad:.2f} above {p.max_bad_feedback_rate - margin:.2f} "
                     f"({n_fb} ratings from {senders} senders, {bad_senders} mostly bad)")
    p95 = stats.get("latency_p95_ms")
    if p95 is not None and p95 > p.max_p95_latency_ms * (1 - margin):
        found.append(f"p95 latency {p95:.0f} ms above {p.max_p95_latency_ms * (1 - margin):.0f} ms")
    err = stats.get("error_rate")
    if err is not None and err > p.max_error_rate - margin:
        found.append(f"error rate {err:.3f} above {p.max_error_rate - margin:.3f}")
    return found


def decide(model: str, stats: dict[str, Any], state: ModelState, policy: WatchdogSettings, now: float) -> Decision:
    """What to do for one model now; updates ``state`` in place for trigger/recovered."""
    if (stats.get("count") or 0) < policy.min_events:
        return Decision(model, "insufficient-data", [f"{stats.get('count') or 0} events < {policy.min_events}"], stats)
    found = breaches(stats, policy)
    if state.state == "alerting":
        if not breaches(stats, policy, margin=policy.recovery_margin):
            state.state = "ok"
            return Decision(model, "recovered", [], stats)
        return Decision(model, "hold", ["still alerting: waits for recovery past the margin", *found], stats)
    if not found:
        return Decision(model, "ok", [], stats)
    if state.last_fired_at is not None and now - state.last_fired_at < policy.cooldown_s:
        left = policy.cooldown_s - (now - state.last_fired_at)
        return Decision(model, "hold", [f"cooldown: {left:.0f} s left", *found], stats)
    return Decision(model, "trigger", found, stats)


def combine(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's summary rows (one per version) folded into one (count-weighted)."""
    count = sum(r["count"] for r in rows)
    fb = sum(r.get("feedback_count") or 0 for r in rows)
    conf_rows = [r for r in rows if r.get("mean_confidence") is not None and r["count"]]
    conf_n = sum(r["count"] for r in conf_rows)
    return {
        "count": count,
        "error_rate": sum(r["error_rate"] * r["count"] for r in rows) / count if count else 0.0,
        "mean_confidence": sum(r["mean_confidence"] * r["count"] for r in conf_rows) / conf_n if conf_n else None,
        "latency_p95_ms": max((r["latency_p95_ms"] for r in rows if r.get("latency_p95_ms") is not None), default=None),
        "feedback_count": fb,
        "bad_feedback_rate": (sum((r.get("bad_feedback_rate") or 0) * (r.get("feedback_count") or 0) for r in rows) / fb
                              if fb else None),
        # a sender who rated two versions counts twice here: the watchdog judges production's rows only
        "feedback_senders": sum(r.get("feedback_senders") or 0 for r in rows),
        "bad_feedback_senders": sum(r.get("bad_feedback_senders") or 0 for r in rows),
    }
