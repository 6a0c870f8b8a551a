"""Drift on the embedded stack, end to end, with numbers (README "Drift and recovery").

1. Traffic shifts: shapes in a colour the VQA model never saw (``pink``, a word its
   tokenizer knows). Accuracy and mean confidence on held-out shifted inputs and on the
   original world are measured through the gateway (before).
2. Users rate the wrong answers bad and type the right one, through ``/v1/feedback``, for
   the *feedback* part of the shifted inputs only; the held-out part never gets feedback.
3. The watchdog sees the quality drop and triggers a fine-tune job with the feedback; the
   gate scores it (held-out feedback rows, fit, and the original world); it becomes the
   canary; the fine-tune service's auto-promoter makes it production once it has served
   its share without being worse.
4. Accuracy is measured again on the same held-out inputs (after).

The corrections come from three users, so anonymous corrections reach the default quorum
(docs/threat-model.md). With ``poisoned`` the corrections are shuffled across the world's
answers and a careless reviewer accepts every pending group: the gate must refuse the job
and production must stay where it was.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.bench.procs import ServerProcess, child_env, serve_argv
from services.common.registry import Registry
from services.vqa.world import shapes

MODEL = "vqa-blip"
ADMIN_TOKEN = "drift-demo-admin-token-0123456789"
DRIFT_COLOR = "pink"
USERS = 3  # distinct users who send the corrections (the default quorum)
SIZES = {"feedback": 48, "shifted_heldout": 60, "world": 120}
SEEDS = {"feedback": 101, "shifted_heldout": 202, "world": 303, "poison": 404}
Log = Callable[[str], None]


@dataclass
class Inputs:
    """Requests with their right answers; images are PNG files under the data root."""

    feedback: list[dict[str, str]] = field(default_factory=list)
    shifted_heldout: list[dict[str, str]] = field(default_factory=list)
    world: list[dict[str, str]] = field(default_factory=list)


def write_inputs(data_dir: Path) -> Inputs:
    out = Inputs()
    groups = {"feedback": shapes.drift_examples(SEEDS["feedback"], SIZES["feedback"], DRIFT_COLOR),
              "shifted_heldout": shapes.drift_examples(SEEDS["shifted_heldout"], SIZES["shifted_heldout"], DRIFT_COLOR),
              "world": shapes.examples(SEEDS["world"], SIZES["world"])}
    for name, examples in groups.items():
        folder = data_dir / "drift" / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = getattr(out, name)
        for i, ex in enumerate(examples):
            path = folder / f"{i:03d}.png"
            shapes.render(ex.scene).save(path)
            rows.append({"image_path": path.relative_to(data_dir).as_posix(), "question": ex.question,
                         "answer": ex.answer})
    return out


def poisoned_corrections(inputs: Inputs) -> list[str]:
    """The feedback items' corrections shuffled with the world's answers (colours, shapes, counts, yes/no)."""
    pool = [r["answer"] for r in inputs.world]
    random.Random(SEEDS["poison"]).shuffle(pool)
    return [pool[i % len(pool)] for i in range(len(inputs.feedback))]


class Stack:
    """vqa, qa, style, fine-tune (auto-promotion on) and the gateway on free loopback ports."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir, self.log_dir = data_dir, log_dir
        self.procs: dict[str, ServerProcess] = {}

    def _start(self, name: str, **env: str) -> ServerProcess:
        proc = ServerProcess(name, serve_argv(name), child_env(self.data_dir, env), self.log_dir / f"{name}.log")
        self.procs[name] = proc.start()
        return proc

    def start(self) -> Stack:
        reload = {f"LOOPLINE_{t}_RELOAD_INTERVAL_S": "0.5" for t in ("VQA", "QA", "STYLE")}
        threads = {f"LOOPLINE_{t}_NUM_THREADS": "1" for t in ("VQA", "QA", "STYLE")}
        for name in ("vqa", "qa", "style"):
            self._start(name, **reload, **threads)
        self._start("finetune", LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN, LOOPLINE_FINETUNE_NUM_THREADS="2",
                    LOOPLINE_FINETUNE_CANARY_WEIGHT="0.2", LOOPLINE_FINETUNE_AUTO_PROMOTE_AFTER_S="3",
                    LOOPLINE_FINETUNE_AUTO_PROMOTE_CHECK_S="1", LOOPLINE_FINETUNE_AUTO_PROMOTE_MIN_REQUESTS="10")
        for proc in self.procs.values():
            proc.wait_ready(timeout_s=300)
        urls = {f"LOOPLINE_{n.upper()}_URL": p.url for n, p in self.procs.items()}
        self._start("gateway", LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN, **urls).wait_ready(timeout_s=120)
        return self

    def url(self, name: str) -> str:
        return self.procs[name].url

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


def ask(client: httpx.Client, rows: list[dict[str, str]], client_id: str = "eval") -> list[dict[str, Any]]:
    out = []
    for row in rows:
        r = client.post("/v1/vqa", json={"image_path": row["image_path"], "question": row["question"]},
                        headers={"X-Client-Id": client_id})
        r.raise_for_status()
        out.append(r.json())
    return out


def measure(client: httpx.Client, rows: list[dict[str, str]]) -> dict[str, Any]:
    answers = ask(client, rows)
    right = [a["answer"] == r["answer"] for a, r in zip(answers, rows, strict=True)]
    return {"accuracy": round(sum(right) / len(rows), 4),
            "mean_confidence": round(statistics.fmean(a["confidence"] for a in answers), 4),
            "versions": sorted({a["model"]["version"] for a in answers}), "count": len(rows)}


def run_drift(data_dir: Path, *, poisoned: bool = False, log: Log = print, job_timeout_s: float = 300.0,
              promote_timeout_s: float = 180.0) -> dict[str, Any]:
    """Run the scenario on a private stack over ``data_dir`` (which holds the registry)."""
    from services.common.settings import CommonSettings
    from services.watchdog.app import build_watchdog
    from services.watchdog.settings import WatchdogSettings

    started = time.monotonic()
    registry = Registry(data_dir / "registry")
    production_before = registry.resolve(MODEL)
    if production_before is None or registry.manifest(MODEL, production_before).get("world") is None:
        raise RuntimeError(f"{MODEL} in {data_dir / 'registry'} is not a world model: run "
                           "`loopline models bootstrap --tiny` first")
    (data_dir / "state").mkdir(parents=True, exist_ok=True)
    inputs = write_inputs(data_dir)
    stack = Stack(data_dir, data_dir / "logs").start()
    result: dict[str, Any] = {"poisoned": poisoned, "drift": f"{DRIFT_COLOR} shapes, colour questions",
                              "sizes": dict(SIZES), "production_before": production_before}
    try:
        with httpx.Client(base_url=stack.url("gateway"), timeout=60) as client:
            log(f"stack up in {time.monotonic() - started:.0f} s; measuring before")
            result["before"] = {"shifted": measure(client, inputs.shifted_heldout), "world": measure(client, inputs.world)}
            log(f"before: shifted {_fmt(result['before']['shifted'])}; world {_fmt(result['before']['world'])}")

            corrections = poisoned_corrections(inputs) if poisoned else [r["answer"] for r in inputs.feedback]
            answers = ask(client, inputs.feedback, client_id="users")
            bad = 0
            for answer, row, correction in zip(answers, inputs.feedback, corrections, strict=True):
                if answer["answer"] != row["answer"]:
                    # several users: an anonymous correction trains once enough distinct senders agree
                    r = client.post("/v1/feedback", json={"request_id": answer["request_id"], "rating": "bad",
                                                          "correction": correction},
                                    headers={"X-Client-Id": f"user-{bad % USERS}"})
                    r.raise_for_status()
                    bad += 1
            if poisoned:  # a careless reviewer accepts every pending group: only the gate stands in the way
                result["reviewed"] = accept_all_pending(client)
            result["feedback"] = {"requests": len(answers), "bad_with_correction": bad, "users": USERS}
            log(f"feedback: {bad} of {len(answers)} shifted answers rated bad with a "
                f"{'shuffled' if poisoned else 'right'} correction")

            common = CommonSettings(data_dir=data_dir, admin_token=ADMIN_TOKEN, finetune_url=stack.url("finetune"))
            dog = build_watchdog(common, WatchdogSettings(min_events=20, min_feedback=5, trigger="finetune",
                                                          models=[MODEL]))
            try:
                decision = dog.run_once()[0]
            finally:
                dog.store.close()
            result["watchdog"] = {"action": decision["action"], "reasons": decision["reasons"]}
            log(f"watchdog: {decision['action']} ({'; '.join(decision['reasons'])})")
            if decision["action"] != "trigger":
                raise RuntimeError(f"the watchdog did not trigger: {decision}")
            job = wait_job(client, decision["result"]["job_id"], job_timeout_s)
            result["job"] = {"status": job["status"], "version": job.get("version"), "alias": job.get("alias"),
                             "gate": job.get("gate", {}).get("reason"), "seconds": job.get("total_seconds")}
            produced = f"v{job['version']} -> {job.get('alias')}" if job.get("version") else "no version"
            log(f"job {job['id']}: {job['status']} {produced}; "
                f"{job.get('gate', {}).get('reason')}")

            if job["status"] == "succeeded":
                result["promotion"] = drive_until_promoted(client, registry, inputs, int(job["version"]),
                                                           promote_timeout_s)
                log(f"auto-promotion: {result['promotion']}")
                wait_served(client, inputs.world[0], int(job["version"]))
            result["production_after"] = registry.resolve(MODEL)
            result["after"] = {"shifted": measure(client, inputs.shifted_heldout), "world": measure(client, inputs.world)}
            log(f"after: shifted {_fmt(result['after']['shifted'])}; world {_fmt(result['after']['world'])}")
    finally:
        stack.stop()
    result["delta_points"] = {k: round(100 * (result["after"][k]["accuracy"] - result["before"][k]["accuracy"]), 1)
                              for k in ("shifted", "world")} if "after" in result else None
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def accept_all_pending(client: httpx.Client) -> int:
    """Accept every group of pending corrections with the admin key; how many corrections."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    found = client.get("/v1/feedback/groups", params={"state": "pending", "model": MODEL}, headers=headers)
    found.raise_for_status()
    accepted = 0
    for group in found.json()["groups"]:
        r = client.post("/v1/feedback/review", json={"action": "accept", "group": group["group"],
                                                     "reason": "drift demo: a careless reviewer"}, headers=headers)
        r.raise_for_status()
        accepted += r.json()["count"]
    return accepted


def wait_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/finetune/{job_id}", headers=headers).json()
        if job.get("status") in ("succeeded", "rejected", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout_s:.0f} s")
        time.sleep(0.5)


def drive_until_promoted(client: httpx.Client, registry: Registry, inputs: Inputs, version: int,
                         timeout_s: float) -> dict[str, Any]:
    """Live traffic (world and shifted, many users) until the auto-promoter makes ``version`` production."""
    deadline = time.monotonic() + timeout_s
    mixed = [r for pair in zip(inputs.world, inputs.feedback * 3, strict=False) for r in pair]
    sent = on_canary = 0
    while registry.resolve(MODEL) != version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"v{version} not promoted after {timeout_s:.0f} s ({sent} requests, {on_canary} on it)")
        row = mixed[sent % len(mixed)]
        r = client.post("/v1/vqa", json={"image_path": row["image_path"], "question": row["question"]},
                        headers={"X-Client-Id": f"user-{sent}"})
        r.raise_for_status()
        on_canary += r.json()["model"]["version"] == version
        sent += 1
    history = registry.aliases(MODEL)["history"]
    last = next(h for h in reversed(history) if h.get("alias") == "production")
    return {"requests": sent, "served_by_canary": on_canary, "by": last.get("actor"), "reason": last.get("reason")}


def wait_served(client: httpx.Client, row: dict[str, str], version: int, timeout_s: float = 60.0) -> None:
    """Services reload aliases on their own: wait until production answers from ``version``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.post("/v1/vqa", json={"image_path": row["image_path"], "question": row["question"]},
                        headers={"X-Client-Id": "eval"})
        if r.status_code == 200 and r.json()["model"]["version"] == version:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the VQA service did not switch to v{version}")


def prepare_data_dir(target: Path, source_registry: Path | None, log: Log = print) -> Path:
    """A private data root for the scenario: a copy of a world registry, or a fresh bootstrap."""
    target.mkdir(parents=True, exist_ok=True)
    if source_registry is not None and (source_registry / MODEL).is_dir():
        reg = Registry(source_registry)
        prod = reg.resolve(MODEL)
        if prod is not None and reg.manifest(MODEL, prod).get("world") is not None:
            shutil.copytree(source_registry, target / "registry")
            log(f"using a copy of {source_registry}")
            return target
    from services.ops.bootstrap import bootstrap_tiny

    log("no world registry to copy: training the tiny models (make models)")
    bootstrap_tiny(Registry(target / "registry"))
    return target


def _fmt(m: dict[str, Any]) -> str:
    return f"accuracy {m['accuracy']:.1%}, mean confidence {m['mean_confidence']:.2f} (n={m['count']})"
