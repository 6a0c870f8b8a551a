"""``loopline finetune ...``: submit and follow jobs on the service, or run one in-process (--local)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.common.commands import common_settings, err, fail

console = Console()
finetune_app = typer.Typer(help="Fine-tuning jobs: run, follow, list, cancel.", no_args_is_help=True)
EXIT = {"succeeded": 0, "rejected": 3, "failed": 1, "cancelled": 1}


def register(app: typer.Typer) -> None:
    app.add_typer(finetune_app, name="finetune")


class Client:
    """The service's jobs API with the admin token."""

    def __init__(self) -> None:
        common = common_settings()
        self.base = common.url_of("finetune")
        token = common.admin_token
        if token is None:
            path = Path(common.state) / "admin_token"
            if not path.is_file():
                fail(f"no admin token: set LOOPLINE_ADMIN_TOKEN or start the services (they write {path})", 2)
            token = path.read_text(encoding="ascii").strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            resp = httpx.request(method, self.base + path, headers=self.headers, timeout=30, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the fine-tune service at {self.base} ({type(exc).__name__}); "
                  "is it running? (`loopline serve finetune`, or use --local)")
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:300]
            fail(f"{resp.status_code}: {message}")
        return resp.json()


@finetune_app.command("run")
def run(model: Annotated[str, typer.Argument(help="registry model, e.g. qa-extractive, vqa-blip, style-mosaic")],
        dataset: Annotated[str | None, typer.Option(help="file under the data root (VQA CSV or SQuAD JSON)")] = None,
        feedback: Annotated[bool, typer.Option("--feedback", help="train on feedback corrections too")] = False,
        style_image: Annotated[str | None, typer.Option(help="style: style image under the data root")] = None,
        content_dir: Annotated[str | None, typer.Option(help="style: content image folder under the data root")] = None,
        epochs: Annotated[int | None, typer.Option(min=1)] = None,
        steps: Annotated[int | None, typer.Option(help="minimum optimiser steps", min=1)] = None,
        max_steps: Annotated[int | None, typer.Option(min=1)] = None,
        batch_size: Annotated[int | None, typer.Option(min=1)] = None,
        lr: Annotated[float | None, typer.Option("--learning-rate", "--lr", help="learning rate")] = None,
        seed: Annotated[int | None, typer.Option()] = None,
        repeat: Annotated[int, typer.Option(help="use the rows this many times", min=1)] = 1,
        image_size: Annotated[int | None, typer.Option(help="style: training image side")] = None,
        promote: Annotated[bool, typer.Option(help="alias the version when the gate passes")] = True,
        reason: Annotated[str | None, typer.Option(help="why (recorded with the job)")] = None,
        local: Annotated[bool, typer.Option("--local", help="run in this process, not on the service")] = False,
        wait: Annotated[bool, typer.Option("--wait", help="wait for the end; exit 0 passed, 3 refused, 1 failed")] = False,
        follow: Annotated[bool, typer.Option("--follow", help="wait with a progress bar")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Start a fine-tune job."""
    from pydantic import ValidationError

    from .schemas import Hyperparameters, JobRequest

    try:
        hp = Hyperparameters(epochs=epochs, min_steps=steps, max_steps=max_steps, batch_size=batch_size,
                             learning_rate=lr, seed=seed, repeat=repeat, image_size=image_size)
        body = JobRequest(model=model, dataset=dataset, use_feedback=feedback, style_image=style_image,
                          content_dir=content_dir, hyperparameters=hp, promote=promote, reason=reason, trigger="cli")
    except ValidationError as exc:
        from services.common.errors import describe_validation

        fail(describe_validation(exc.errors()), 2)
    if local:
        job = _run_local(body.model_dump(), show=follow or wait, as_json=as_json)
    else:
        client = Client()
        job = client.call("POST", "/v1/jobs", json=body.model_dump())
        if not (wait or follow):
            _print_job(job, as_json)
            return
        job = _watch(lambda: client.call("GET", f"/v1/jobs/{job['id']}"), job, show=not as_json)
    _print_job(job, as_json)
    raise typer.Exit(EXIT.get(job["status"], 1))


def _run_local(request: dict[str, Any], show: bool, as_json: bool) -> dict[str, Any]:
    """The job goes through the same queue file and worker code as on the service, in this process."""
    from services.common.events import EventsSettings, open_event_store
    from services.common.registry import Registry

    from .pipeline import task_of
    from .settings import FinetuneSettings
    from .store import JobStore
    from .worker import Worker

    common = common_settings()
    try:
        settings = FinetuneSettings(runner="embedded")
    except ValueError as exc:
        fail(f"bad setting: {exc}", 2)
    registry = Registry(common.registry)
    store = JobStore(common.state / "finetune.db")
    worker = Worker(settings=settings, store=store, registry=registry, events=open_event_store(EventsSettings(), common.state, service="finetune-cli"),
                    data_dir=common.data_dir, state_dir=common.state, quorum=common.feedback_quorum)
    try:
        task = task_of(registry, request["model"])
    except Exception as exc:  # NotFound
        fail(str(exc))
    job = store.create(model=request["model"], task=task, runner="local", request=request)
    store.update(job.id, status="running", started_at=time.time())
    thread = threading.Thread(target=worker._run_guarded, args=(job.id, request), daemon=True)
    thread.start()
    try:
        return _watch(lambda: store.get(job.id).model_dump(), job.model_dump(), show=show and not as_json)
    except KeyboardInterrupt:
        store.request_cancel(job.id)
        thread.join(30)
        return store.get(job.id).model_dump()


def _watch(fetch: Any, job: dict[str, Any], show: bool) -> dict[str, Any]:
    from .schemas import TERMINAL

    columns = [TextColumn("[bold]{task.fields[phase]}"), BarColumn(), TaskProgressColumn(),
               TextColumn("step {task.completed:.0f}/{task.total:.0f} loss {task.fields[loss]}"), TimeRemainingColumn()]
    with Progress(*columns, console=err, disable=not show) as bar:
        task = bar.add_task(job["model"], total=1, phase="queued", loss="-")
        while job["status"] not in TERMINAL:
            time.sleep(0.5)
            job = fetch()
            p = job["progress"]
            loss = f"{p['loss']:.4f}" if p.get("loss") is not None else "-"
            bar.update(task, total=max(1, p.get("total") or 1), completed=p.get("step") or 0, phase=p.get("phase"),
                       loss=loss)
    return job


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(job))
        return
    p = job["progress"]
    console.print(f"job [bold]{job['id']}[/bold] {job['model']} ({job['task']}): [bold]{job['status']}[/bold]"
                  f"  step {p['step']}/{p['total']} {p['phase']}")
    if job.get("version") is not None:
        console.print(f"  version v{job['version']}" + (f" -> {job['alias']}" if job.get("alias") else " (not aliased)"))
    elif job["status"] == "rejected":
        kept = (job.get("gate") or {}).get("quarantined")
        console.print("  no version: the refused candidate's weights are "
                      + (f"in <registry>/{kept} for inspection" if kept else "deleted"))
    if job.get("gate"):
        console.print(f"  {job['gate']['reason']}")
    elif job.get("error"):
        console.print(f"  {job['error']}")


@finetune_app.command("status")
def status(job_id: str, as_json: Annotated[bool, typer.Option("--json")] = False,
           follow: Annotated[bool, typer.Option("--follow", help="progress bar until it ends")] = False) -> None:
    """One job: status, progress, version, gate decision."""
    client = Client()
    job = client.call("GET", f"/v1/jobs/{job_id}")
    if follow:
        job = _watch(lambda: client.call("GET", f"/v1/jobs/{job_id}"), job, show=True)
    _print_job(job, as_json)


@finetune_app.command("list")
def list_jobs(as_json: Annotated[bool, typer.Option("--json")] = False,
              limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """Recent jobs, newest first."""
    jobs = Client().call("GET", "/v1/jobs", params={"limit": limit})["jobs"]
    if as_json:
        console.print_json(json.dumps(jobs))
        return
    table = Table("job", "model", "status", "progress", "version", "alias", "created")
    for j in jobs:
        p = j["progress"]
        table.add_row(j["id"], j["model"], j["status"], f"{p['step']}/{p['total']} {p['phase']}",
                      str(j.get("version") or "-"), j.get("alias") or "-",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["created_at"])))
    console.print(table if jobs else "no jobs yet")


@finetune_app.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    job = Client().call("POST", f"/v1/jobs/{job_id}/cancel")
    console.print(f"job {job_id}: {job['status']}" + (" (stopping at the next step)" if job["status"] == "running" else ""))


@finetune_app.command("gate")
def gate(dataset_dir: Annotated[str, typer.Option(help="folder under the data root holding each task's world sample "
                                                      "dataset (world-vqa.csv, world-qa.json)")] = "samples",
         min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="lowest primary score (VQA accuracy, "
                                                                          "QA F1) a served version may have")] = 0.5,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Release gate: score every production and canary version on the sample data; exit 1 if one is below."""
    from services.common.errors import LooplineError
    from services.common.registry import Registry

    from .release_gate import release_gate
    from .settings import FinetuneSettings

    common = common_settings()
    try:
        rows = release_gate(Registry(common.registry), common.data_dir, dataset_dir, min_score,
                            FinetuneSettings(runner="embedded"))
    except (LooplineError, ValueError, OSError) as exc:  # a missing or bad dataset: one sentence, no traceback
        fail(f"cannot run the release gate: {exc}", 2)
    if not rows:
        fail(f"nothing to gate: no served model has a sample dataset under {dataset_dir}", 2)
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in rows]))
    else:
        table = Table("model", "alias", "version", "metric", "score", "minimum", "rows", "passed")
        for r in rows:
            table.add_row(r.model, r.alias, str(r.version), r.metric, f"{r.score:.4f}", f"{r.minimum:.2f}",
                          str(r.rows), "yes" if r.passed else "[red]NO[/red]")
        console.print(table)
    failed = [r for r in rows if not r.passed]
    if failed:
        fail("release blocked: " + "; ".join(f"{r.model} v{r.version} ({r.alias}) {r.metric} {r.score:.3f} "
                                              f"< {r.minimum}" for r in failed))


@finetune_app.command("execute", hidden=True)
def execute(job_id: str) -> None:
    """Inside a Kubernetes training pod: run the job whose files the service wrote."""
    from services.common.errors import LooplineError
    from services.common.logs import configure_logging
    from services.common.registry import Registry, write_json_atomic

    from .jobfiles import FileReporter, job_dir, read_json
    from .pipeline import run_job
    from .settings import FinetuneSettings

    common = common_settings()
    configure_logging("finetune-job", common.log_level, common.log_file,
                      max_bytes=common.log_max_bytes, backups=common.log_backups)
    folder = job_dir(common.state, job_id)
    request = read_json(folder / "request.json")
    if request is None:
        fail(f"{folder / 'request.json'} is missing", 2)
    try:
        outcome = run_job(job_id, request, settings=FinetuneSettings(), registry=Registry(common.registry),
                          data_dir=common.data_dir, reporter=FileReporter(folder),
                          feedback_rows=read_json(folder / "feedback.json") or [])
    except LooplineError as exc:
        outcome = {"status": "failed", "error": exc.message}
    except Exception as exc:
        outcome = {"status": "failed", "error": f"training crashed: {type(exc).__name__}: {exc}"}
        write_json_atomic(folder / "result.json", outcome)
        raise
    write_json_atomic(folder / "result.json", outcome)
    raise typer.Exit(0 if outcome["status"] in ("succeeded", "rejected") else 1)
