"""One watchdog pass: per model, judge the window, maybe trigger, record every decision."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from services.common.errors import Unavailable
from services.common.events import EventStore
from services.common.registry import Registry, write_json_atomic
from services.common.settings import CommonSettings

from .policy import Decision, ModelState, combine, decide
from .settings import WatchdogSettings
from .triggers import Trigger, TriggerFailed

log = logging.getLogger("loopline.watchdog")
STATE_FILE = "watchdog.json"


class Watchdog:
    def __init__(self, common: CommonSettings, settings: WatchdogSettings, store: EventStore, trigger: Trigger) -> None:
        self.settings = settings
        self.store = store
        self.trigger = trigger
        self.registry = Registry(common.registry)
        self.state_path = Path(common.state) / STATE_FILE
        self.states = self._load_states()
        self.last: list[dict[str, Any]] = []

    def _load_states(self) -> dict[str, ModelState]:
        import json

        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {m: ModelState(**s) for m, s in data.items()}

    def _save_states(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.state_path, {m: s.to_dict() for m, s in self.states.items()})

    def run_once(self, now: float | None = None) -> list[dict[str, Any]]:
        now = now or time.time()
        try:
            rows = self.store.summary(window_s=self.settings.window_s)
        except Unavailable as exc:
            # judging on a partial picture could fire a retraining nobody needs: skip, say so, try next pass
            log.warning("pass skipped: %s", exc.message, extra={"event_action": "watchdog-decision",
                                                                 "event_outcome": "skipped"})
            self.last = [{"ts": now, "action": "skipped", "reasons": ["the event store cannot be read"]}]
            return self.last
        models = self.settings.models or sorted({r["model"] for r in rows if r["model"] != "-"})
        decisions = []
        for model in models:
            production = self.registry.resolve(model) if model in self.registry.models() else None
            mine = [r for r in rows if r["model"] == model and (production is None or r["version"] == production)]
            stats = combine(mine) if mine else {"count": 0}
            state = self.states.setdefault(model, ModelState())
            decision = decide(model, stats, state, self.settings, now)
            record = self._act(decision, state, now, production)
            decisions.append(record)
        self._save_states()
        self.last = decisions
        return decisions

    def _act(self, decision: Decision, state: ModelState, now: float, production: int | None) -> dict[str, Any]:
        record: dict[str, Any] = {"ts": now, "model": decision.model, "version": production, "action": decision.action,
                                  "reasons": decision.reasons, "stats": decision.stats, "trigger": self.trigger.name}
        if decision.action == "trigger":
            reason = "; ".join(decision.reasons)
            try:
                record["result"] = self.trigger.fire(decision.model, reason)
                state.state, state.last_fired_at = "alerting", now
            except TriggerFailed as exc:
                # not fired: the model stays armed and the next pass tries again
                record["action"], record["error"] = "trigger-failed", str(exc)
        self.store.record_event("watchdog", record)
        level = logging.WARNING if record["action"] in ("trigger", "trigger-failed") else logging.INFO
        log.log(level, "%s: %s%s", decision.model, record["action"],
                f" ({'; '.join(decision.reasons)})" if decision.reasons else "",
                extra={"event_action": "watchdog-decision", "event_outcome": record["action"],
                       "ml.model.name": decision.model})
        return record
