"""The ``loopline`` command: run the stack, serve one service, manage the registry."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.common.commands import common_settings, err, fail
from services.common.errors import LooplineError
from services.common.registry import Registry

app = typer.Typer(help="Loopline: serve, fine-tune and watch VQA, QA and style-transfer models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()


def _registry() -> Registry:
    return Registry(common_settings().registry)


@app.command()
def up(services: Annotated[list[str] | None, typer.Argument(help="subset of services (default: all)")] = None) -> None:
    """Start the whole embedded stack on 127.0.0.1 (Ctrl-C stops it)."""
    from services.ops.stack import AlreadyRunning, run_stack

    try:
        # each child is `loopline serve <service>`: the caller names the command, so the ops
        # package never names the CLI that imports it
        raise typer.Exit(run_stack(common_settings(), services, serve_argv=[sys.executable, "-m", "services.cli", "serve"]))
    except AlreadyRunning as exc:
        fail(str(exc))


@app.command()
def serve(service: Annotated[str, typer.Argument(help="gateway | vqa | qa | style | finetune | watchdog")],
          port: Annotated[int | None, typer.Option(help="override the port setting")] = None) -> None:
    """Run one service in the foreground."""
    import uvicorn

    from services.ops.entrypoints import ENTRYPOINTS, load_factory

    if service not in ENTRYPOINTS:
        fail(f"unknown service {service!r}; expected one of {', '.join(ENTRYPOINTS)}", 2)
    settings = common_settings()
    try:
        application = load_factory(service)()
    except ValueError as exc:  # pydantic ValidationError is a ValueError: a bad setting
        fail(f"cannot start {service}: {exc}", 2)
    uvicorn.run(application, host=settings.host, port=port or settings.port_of(service), log_config=None,
                access_log=False, timeout_graceful_shutdown=settings.shutdown_grace_s)


# -- registry ------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every model with its task, versions and aliases."""
    reg = _registry()
    rows = [{"model": m, "task": reg.task_of(m), "versions": reg.versions(m),
             "production": reg.resolve(m, "production"), "canary": reg.resolve(m, "canary"),
             "canary_weight": reg.aliases(m)["canary_weight"]} for m in reg.models()]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("model", "task", "versions", "production", "canary")
    for r in rows:
        canary = f"{r['canary']} ({r['canary_weight']:.0%})" if r["canary"] is not None else "-"
        table.add_row(r["model"], r["task"], ",".join(map(str, r["versions"])), str(r["production"]), canary)
    console.print(table if rows else "the registry is empty: run `loopline models bootstrap --tiny`")


@models_app.command("show")
def models_show(model: str) -> None:
    """A model's manifests and aliases as JSON."""
    _guard(lambda: console.print_json(json.dumps(_registry().describe(model))))


@models_app.command("promote")
def models_promote(model: str, version: int,
                   alias: Annotated[str, typer.Option(help="production or canary")] = "production",
                   weight: Annotated[float | None, typer.Option(help="canary traffic share, 0..1")] = None) -> None:
    """Point an alias at a version."""
    data = _guard(lambda: _registry().promote(model, version, alias, weight, actor="cli"))
    console.print(f"{model}: {alias} -> v{version}" + (f" at {data['canary_weight']:.0%}" if alias == "canary" else ""))


@models_app.command("rollback")
def models_rollback(model: str) -> None:
    """Production goes back to its previous version."""
    data = _guard(lambda: _registry().rollback(model, actor="cli"))
    console.print(f"{model}: production -> v{data['production']}")


@models_app.command("verify")
def models_verify(model: Annotated[str | None, typer.Argument()] = None) -> None:
    """Check every file against its manifest sha256; exit 1 on any mismatch."""
    problems = _guard(lambda: _registry().verify(model))
    for p in problems:
        err.print(f"[red]FAIL[/red] {p}")
    if problems:
        raise typer.Exit(1)
    console.print("all versions verified")


@models_app.command("bootstrap")
def models_bootstrap(tiny: Annotated[bool, typer.Option("--tiny", help="tiny random-weight models, offline")] = False,
                     if_empty: Annotated[bool, typer.Option("--if-empty", help="skip models already present")] = False,
                     only: Annotated[list[str] | None, typer.Option(
                         "--only", help="build only this tiny model (repeatable), e.g. qa-extractive")] = None,
                     jobs: Annotated[int | None, typer.Option(
                         "--jobs", min=1, help="models trained at once, each in its own process "
                                               "(default: the cores available; 1: one after the other)")] = None) -> None:
    """Build models offline and register each as a new production version."""
    from services.ops.bootstrap import bootstrap_tiny, tiny_models

    if not tiny:
        fail("only --tiny is built offline; use `loopline models pull` for real checkpoints", 2)
    unknown = sorted(set(only or ()) - set(tiny_models()))
    if unknown:
        fail(f"no tiny model named {', '.join(unknown)}; the tiny models are {', '.join(tiny_models())}", 2)
    made = _guard(lambda: bootstrap_tiny(_registry(), if_empty=if_empty, only=tuple(only or ()), jobs=jobs))
    for ref in made:
        console.print(f"built {ref.model} v{ref.version}")
    if not made:
        console.print("registry already holds every model; nothing built")


@models_app.command("pull")
def models_pull(model: Annotated[str, typer.Argument(
                    help="vqa-blip or qa-extractive, or a known hub id such as Salesforce/blip-vqa-capfilt-large")],
                hub_id: Annotated[str | None, typer.Option(help="hub repository id")] = None,
                promote: Annotated[bool, typer.Option(help="make it production")] = False) -> None:
    """Fetch a real checkpoint from the Hugging Face hub and register it."""
    from services.ops.bootstrap import HubUnreachable, pull

    try:
        ref = pull(_registry(), model, hub_id, promote)
    except (HubUnreachable, ValueError) as exc:
        fail(str(exc))
    console.print(f"registered {ref.model} v{ref.version}")


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except LooplineError as exc:
        fail(exc.message)


COMMAND_GROUP = "loopline.commands"


def register_optional_commands() -> None:
    """Subcommands from the ``loopline.commands`` entry points (pyproject.toml): the services' own
    and the tools' (bench, soak, drift, redteam under harness/). Loaded lazily because they carry
    heavy imports; a package an image leaves out (harness/ in a service image) is skipped."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=COMMAND_GROUP):
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name and entry.module.startswith(exc.name):
                continue
            raise
        register(app)


def main() -> None:
    register_optional_commands()
    app()


if __name__ == "__main__":
    sys.exit(main())
