"""``loopline demo drift``: the drift scenario as one command, on a private copy of the registry."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

demo_app = typer.Typer(help="Scenarios that show the platform at work, with their numbers.", no_args_is_help=True)


@demo_app.command("drift")
def drift(poisoned: Annotated[bool, typer.Option(help="shuffle the corrections: the gate must refuse the job")] = False,
          workdir: Annotated[Path | None, typer.Option(help="data root to run in (default: a temporary folder)")] = None,
          as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False) -> None:
    """Traffic shifts to pink shapes; feedback, watchdog, fine-tune, gate, canary and auto-promotion
    recover it. Runs its own stack on free ports over a copy of ./data/registry (trained when absent)."""
    from services.common.settings import CommonSettings

    from .scenario import prepare_data_dir, run_drift

    with tempfile.TemporaryDirectory(prefix="loopline-drift-") as tmp:
        data = prepare_data_dir(workdir or Path(tmp), CommonSettings().registry, log=typer.echo)
        result = run_drift(data, poisoned=poisoned, log=typer.echo)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(summary(result))
    ok = result["job"]["status"] == "rejected" and result["production_after"] == result["production_before"] \
        if poisoned else result["job"]["status"] == "succeeded" and result["production_after"] == result["job"]["version"]
    raise typer.Exit(0 if ok else 1)


def summary(result: dict) -> str:
    b, a = result["before"], result["after"]
    lines = [f"drift scenario ({'poisoned corrections' if result['poisoned'] else 'right corrections'}), "
             f"{result['seconds']:.0f} s",
             f"  job: {result['job']['status']} ("
             + (f"v{result['job']['version']}, alias {result['job']['alias']})" if result["job"]["version"]
                else "no version: a refused candidate is never published)"),
             f"  production: v{result['production_before']} -> v{result['production_after']}",
             f"  shifted held-out accuracy {b['shifted']['accuracy']:.1%} -> {a['shifted']['accuracy']:.1%}, "
             f"mean confidence {b['shifted']['mean_confidence']:.2f} -> {a['shifted']['mean_confidence']:.2f}",
             f"  world accuracy {b['world']['accuracy']:.1%} -> {a['world']['accuracy']:.1%}, "
             f"mean confidence {b['world']['mean_confidence']:.2f} -> {a['world']['mean_confidence']:.2f}"]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
