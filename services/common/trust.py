"""Trust states of feedback corrections: pending, accepted, rejected (docs/threat-model.md).

A correction is *accepted* when it was sent with a reviewer or admin key, when a reviewer
accepted it (one by one or its whole group), or by **quorum**: at least K distinct anonymous
senders gave the same correction to the same served answer of the same model (its *group*).
It is *rejected* when a reviewer rejected it, or when a job trained on it was refused by the
gate (its corrections do not ride along into later jobs unless a reviewer accepts them again).
Every other correction is *pending*: it never trains.

Review decisions are events of kind ``feedback_review`` in the event store (the audit trail:
who, what, when, why); the latest decision about a correction wins over how it arrived.
States are computed from the feedback rows and those events, so nothing is updated in place.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .events import EventStore

REVIEW_KIND = "feedback_review"
STATES = ("pending", "accepted", "rejected")


def normalise(text: Any) -> str:
    return " ".join(str(text or "").lower().split())


def group_key(row: dict[str, Any]) -> str:
    """Same model, same served answer, same correction (case and spacing ignored)."""
    served = (row.get("output") or {}).get("answer")
    return "|".join((row.get("model") or "-", normalise(served), normalise(row.get("correction"))))


def latest_reviews(store: EventStore) -> dict[str, dict[str, Any]]:
    """feedback_id -> the latest review decision about it."""
    out: dict[str, dict[str, Any]] = {}
    # 10 000: the most one Elasticsearch search returns
    for event in sorted(store.events(REVIEW_KIND, limit=10_000), key=lambda e: e.get("ts", 0.0)):
        for fid in event.get("feedback_ids") or []:
            out[fid] = event
    return out


def resolve(rows: list[dict[str, Any]], reviews: dict[str, dict[str, Any]], quorum: int) -> dict[str, dict[str, Any]]:
    """feedback_id -> {"state", "by"} for every row with a correction."""
    out: dict[str, dict[str, Any]] = {}
    anonymous: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if not (row.get("correction") or "").strip():
            continue
        fid, review = row["feedback_id"], reviews.get(row["feedback_id"])
        if review is not None:
            state = "accepted" if review["action"] == "accept" else "rejected"
            out[fid] = {"state": state, "by": review.get("by"), "reason": review.get("reason")}
        elif row.get("trust") == "accepted" or row.get("sender_role") in ("reviewer", "admin"):
            out[fid] = {"state": "accepted", "by": row.get("sender")}
        else:
            out[fid] = {"state": "pending", "by": None}
            anonymous[group_key(row)].add(row.get("sender") or "unknown")
    for row in rows:
        fid = row["feedback_id"]
        if out.get(fid, {}).get("state") == "pending":
            senders = anonymous[group_key(row)]
            if len(senders) >= quorum:
                out[fid] = {"state": "accepted", "by": f"quorum of {len(senders)} senders"}
    return out


def groups(rows: list[dict[str, Any]], states: dict[str, dict[str, Any]], examples: int = 3) -> list[dict[str, Any]]:
    """Corrections grouped for review: counts per state, distinct senders, a few example inputs."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        st = states.get(row["feedback_id"])
        if st is None:
            continue
        key = group_key(row)
        g = out.setdefault(key, {"group": key, "model": row.get("model"), "task": row.get("task"),
                                 "served": (row.get("output") or {}).get("answer"),
                                 "correction": row.get("correction"), "count": 0, "senders": set(),
                                 "states": dict.fromkeys(STATES, 0), "feedback_ids": [], "examples": [],
                                 "last_ts": 0.0})
        g["count"] += 1
        g["senders"].add(row.get("sender") or "unknown")
        g["states"][st["state"]] += 1
        g["feedback_ids"].append(row["feedback_id"])
        g["last_ts"] = max(g["last_ts"], float(row.get("ts") or 0.0))
        if len(g["examples"]) < examples:
            inputs = row.get("inputs") or {}
            g["examples"].append({"feedback_id": row["feedback_id"], "question": inputs.get("question"),
                                  "image_path": inputs.get("image_path"), "sender": row.get("sender")})
    result = []
    for g in out.values():
        g["distinct_senders"] = len(g["senders"])
        g["senders"] = sorted(g["senders"])
        result.append(g)
    return sorted(result, key=lambda g: (-g["states"]["pending"], -g["last_ts"]))


def record_review(store: EventStore, action: str, feedback_ids: Iterable[str], by: str, reason: str | None = None,
                  **extra: Any) -> dict[str, Any]:
    """Write one audit event: ``by`` accepted or rejected these corrections, now."""
    if action not in ("accept", "reject"):
        raise ValueError("action is accept or reject")
    doc = {"ts": time.time(), "action": action, "feedback_ids": sorted(set(feedback_ids)), "by": by,
           "reason": reason, **extra}
    doc["event_id"] = store.record_event(REVIEW_KIND, doc)
    return doc


def states_for(store: EventStore, quorum: int, *, task: str | None = None, model: str | None = None,
               since: float | None = None, limit: int = 10_000) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Feedback rows with a correction and their trust states."""
    rows = store.feedback(task=task, model=model, since=since, with_correction=True, limit=limit)
    return rows, resolve(rows, latest_reviews(store), quorum)


def versions_trained_on(registry: Any, feedback_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every registry version whose lineage names one of these corrections, with its aliases."""
    wanted = set(feedback_ids)
    out = []
    if not wanted:
        return out
    for model in registry.models():
        aliases = registry.aliases(model)
        for version in registry.versions(model):
            used = set((registry.manifest(model, version).get("lineage") or {}).get("feedback_ids") or [])
            hit = used & wanted
            if hit:
                on = [a for a in ("production", "canary") if aliases.get(a) == version]
                out.append({"model": model, "version": version, "corrections": len(hit), "aliases": on})
    return out


def reject_sender(store: EventStore, registry: Any, sender: str, by: str,
                  reason: str | None = None) -> dict[str, Any]:
    """Reject every correction one sender sent; say which versions were trained on them."""
    rows = [r for r in store.feedback(with_correction=True, limit=1_000_000) if r.get("sender") == sender]
    ids = [r["feedback_id"] for r in rows]
    doc = record_review(store, "reject", ids, by, reason or f"everything {sender} sent", sender=sender) if ids else None
    return {"sender": sender, "rejected": len(ids), "review": doc, "versions": versions_trained_on(registry, ids)}
