"""Optional auto-promotion: a canary that served ``auto_promote_after_s`` with live quality no
worse than production's (mean confidence, bad-feedback rate) becomes production."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from services.common.events import EventStore
from services.common.registry import Registry

from .settings import FinetuneSettings

log = logging.getLogger("loopline.finetune.autopromote")


def canary_since(aliases: dict[str, Any]) -> float | None:
    """When the current canary got its alias (epoch seconds)."""
    for entry in reversed(aliases.get("history", [])):
        if entry.get("alias") == "canary" and entry.get("to") == aliases.get("canary"):
            return dt.datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
    return None


def judge(canary: dict[str, Any] | None, production: dict[str, Any] | None, min_requests: int,
          tolerance: float) -> tuple[bool | None, str]:
    """(True: promote, False: keep waiting/refuse, None: not enough data), with the reason."""
    if canary is None or canary["count"] < min_requests:
        return None, f"canary served {canary['count'] if canary else 0} of {min_requests} requests needed"
    if production is None or production["count"] == 0:
        return None, "no production traffic in the window to compare with"
    c_conf, p_conf = canary.get("mean_confidence"), production.get("mean_confidence")
    if c_conf is not None and p_conf is not None and c_conf < p_conf - tolerance:
        return False, f"canary mean confidence {c_conf:.3f} below production {p_conf:.3f}"
    c_bad, p_bad = canary.get("bad_feedback_rate") or 0.0, production.get("bad_feedback_rate") or 0.0
    if c_bad > p_bad + tolerance:
        return False, f"canary bad-feedback rate {c_bad:.3f} above production {p_bad:.3f}"
    return True, (f"canary confidence {c_conf} vs {p_conf}, bad feedback {c_bad:.3f} vs {p_bad:.3f} "
                  f"over {canary['count']} requests")


class AutoPromoter:
    def __init__(self, settings: FinetuneSettings, registry: Registry, events: EventStore) -> None:
        self.settings, self.registry, self.events = settings, registry, events

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.auto_promote_check_s)
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.check_once)
            except Exception:
                log.exception("auto-promotion check failed")

    def check_once(self, now: float | None = None) -> list[dict[str, Any]]:
        now = now or time.time()
        window = float(self.settings.auto_promote_after_s or 0)
        decisions = []
        for model in self.registry.models():
            aliases = self.registry.aliases(model)
            canary, production = aliases.get("canary"), aliases.get("production")
            since = canary_since(aliases) if canary is not None else None
            if since is None or now - since < window:
                continue
            rows = {r["version"]: r for r in self.events.summary(window_s=now - since, model=model)}
            verdict, reason = judge(rows.get(canary), rows.get(production), self.settings.auto_promote_min_requests,
                                    self.settings.auto_promote_tolerance)
            if verdict:
                self.registry.promote(model, canary, "production", actor="finetune:auto-promote", reason=reason)
                log.info("auto-promoted %s v%d to production: %s", model, canary, reason)
            doc = {"ts": now, "model": model, "canary": canary, "production": production,
                   "promoted": bool(verdict), "reason": reason}
            self.events.record_event("auto-promotion", doc)
            decisions.append(doc)
        return decisions
