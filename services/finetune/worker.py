"""The one worker: takes queued jobs in order and hands each to its runner (``runners.py``).

Jobs never overlap; the worker records job events in the event store and never holds the
event loop. Whether training runs here or in a Kubernetes Job is the runner's business.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from services.common.errors import LooplineError, Unavailable
from services.common.events import EventStore
from services.common.registry import Registry
from services.common.training import JobCancelled
from services.common.trust import record_review, states_for

from .pipeline import task_of
from .runners import Runner, make_runner
from .settings import FinetuneSettings
from .store import JobStore

log = logging.getLogger("loopline.finetune.worker")


class NoAcceptedFeedback(LooplineError):
    status, code = 409, "no_accepted_feedback"


INTERRUPTED = "interrupted: the fine-tune service stopped while the job was running (no version was aliased)"


class StoreReporter:
    """Progress into the job row; cancellation read from it."""

    def __init__(self, store: JobStore, job_id: str, cancel: threading.Event) -> None:
        self.store, self.job_id, self.cancel = store, job_id, cancel
        self._last_check = 0.0
        self._progress: dict[str, Any] = {}

    def report(self, progress: dict[str, Any]) -> None:
        self._progress = {**self._progress, **progress}  # a phase change keeps the last step/loss
        self.store.update(self.job_id, progress=self._progress)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self.cancel.is_set() and now - self._last_check > 0.5:
            self._last_check = now
            if self.store.get(self.job_id).cancel_requested:
                self.cancel.set()
        return self.cancel.is_set()


class Worker:
    def __init__(self, *, settings: FinetuneSettings, store: JobStore, registry: Registry, events: EventStore,
                 data_dir: Path, state_dir: Path, runner: Runner | None = None, quorum: int = 3) -> None:
        self.settings = settings
        self.quorum = quorum
        self.store = store
        self.registry = registry
        self.events = events
        self.data_dir = Path(data_dir)
        self.state_dir = Path(state_dir)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.current: str | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner = runner or make_runner(settings, store, registry, self.data_dir, self.state_dir)

    # -- lifecycle -------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Jobs left running by a previous process: failed, unless their runner kept them running."""
        failed = []
        for job in self.store.interrupted():
            if self._reattachable(job.runner, job.id):
                continue  # it kept running elsewhere; the worker re-attaches first
            self.store.finish(job.id, "failed", error=INTERRUPTED)
            self._event(job.id, "failed", {"error": INTERRUPTED})
            log.warning("job %s marked failed: %s", job.id, INTERRUPTED)
            failed.append(job.id)
        return failed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="finetune-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self._cancel.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def notify(self) -> None:
        self.wake.set()

    def cancel(self, job_id: str) -> None:
        if self.current == job_id:
            self._cancel.set()
            self.runner.cancel(job_id)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------
    def _reattachable(self, runner_name: str, job_id: str) -> bool:
        return self.runner.survives_restart and runner_name == self.runner.name and bool(self.store.external(job_id))

    def _loop(self) -> None:
        for job in self.store.interrupted():
            if self._reattachable(job.runner, job.id):
                self._run_guarded(job.id, job.request, reattach=True)
        while not self.stopping.is_set():
            job = self.store.claim_next()
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self._run_guarded(job.id, job.request)

    def _run_guarded(self, job_id: str, request: dict[str, Any], reattach: bool = False) -> None:
        self.current = job_id
        self._cancel.clear()
        self._event(job_id, "started", {"model": request.get("model"), "trigger": request.get("trigger"),
                                        "reason": request.get("reason")})
        try:
            if reattach:
                outcome = self.runner.reattach(job_id, self._cancel)
            else:
                feedback = self.accepted_feedback(request)
                outcome = self.runner.run(job_id, request, feedback, self._cancel,
                                          StoreReporter(self.store, job_id, self._cancel))
                if outcome.get("status") == "rejected":
                    self._hold_back(job_id, outcome)
            self._record(job_id, outcome)
        except JobCancelled as exc:
            self.store.finish(job_id, "cancelled", error=str(exc))
            self._event(job_id, "cancelled", {})
        except LooplineError as exc:
            self.store.finish(job_id, "failed", error=exc.message)
            self._event(job_id, "failed", {"error": exc.message})
        except Exception as exc:  # a training bug must fail the job, not kill the worker
            log.exception("job %s crashed", job_id)
            self.store.finish(job_id, "failed", error=f"training crashed: {type(exc).__name__}: {exc}")
            self._event(job_id, "failed", {"error": type(exc).__name__})
        finally:
            self.current = None

    def _record(self, job_id: str, outcome: dict[str, Any]) -> None:
        status = outcome["status"]
        if status in ("failed", "cancelled"):
            self.store.finish(job_id, status, error=outcome.get("error"))
        else:
            self.store.finish(job_id, status, error=outcome.get("error"), version=outcome.get("version"),
                              alias=outcome.get("alias"), gate=outcome.get("gate"), data=outcome.get("data"),
                              progress={**self.store.get(job_id).progress.model_dump(), "phase": "done",
                                        "eta_s": 0.0})
        self._event(job_id, status, {k: outcome.get(k) for k in ("version", "alias", "error", "train_seconds")})

    def accepted_feedback(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The model's *accepted* corrections (docs/threat-model.md); none accepted refuses the job."""
        if not request.get("use_feedback"):
            return []
        task = task_of(self.registry, request["model"])
        try:
            rows, states = states_for(self.events, self.quorum, task=task, since=request.get("feedback_since"),
                                      limit=self.settings.feedback_limit)
        except Unavailable:
            raise Unavailable("this job learns from feedback, and the event store that holds it cannot be reached "
                              "right now; start the job again once the store is back", code="event_store_unavailable",
                              retry_after=30) from None
        mine = [r for r in rows if r.get("model") in (None, request["model"]) and r["feedback_id"] in states]
        accepted = [{**r, "trust_by": states[r["feedback_id"]]["by"]} for r in mine
                    if states[r["feedback_id"]]["state"] == "accepted"]
        if not accepted:
            counts = {s: sum(1 for r in mine if states[r["feedback_id"]]["state"] == s) for s in ("pending", "rejected")}
            senders = len({r.get("sender") for r in mine})
            raise NoAcceptedFeedback(
                f"no accepted correction for {request['model']}: {counts['pending']} pending and {counts['rejected']} "
                f"rejected from {senders} sender(s). A correction trains once a reviewer accepts it (the Feedback "
                f"page, POST /v1/feedback/review), it was sent with a reviewer key, or {self.quorum} distinct "
                "senders gave the same correction to the same answer")
        return accepted

    def _hold_back(self, job_id: str, outcome: dict[str, Any]) -> None:
        """A refused job's corrections do not ride along into later jobs: they are rejected (a reviewer
        may accept them again)."""
        ids = list((outcome.get("data") or {}).get("feedback_ids") or [])
        if not ids:
            return
        try:
            record_review(self.events, "reject", ids, f"gate:{job_id}",
                          f"job {job_id} trained on them and the gate refused it", job_id=job_id)
        except Exception:  # the job's outcome matters more than this note; it is logged
            log.warning("could not hold back the corrections of refused job %s", job_id, exc_info=True)

    def _event(self, job_id: str, action: str, doc: dict[str, Any]) -> None:
        try:
            self.events.record_event("finetune", {"ts": time.time(), "job_id": job_id, "action": action, **doc})
        except Exception:  # the event store being down must not fail a training job
            log.warning("could not record finetune event %s for %s", action, job_id, exc_info=True)

