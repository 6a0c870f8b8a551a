"""``loopline redteam``: play liars, a flood, honest users and a reviewer against a private stack."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def redteam(scenarios: Annotated[list[str] | None, typer.Argument(help="liar colluders flood honest reviewer")] = None,
            quick: Annotated[bool, typer.Option(help="smaller sets (the test suite's run)")] = False,
            workdir: Annotated[Path | None, typer.Option(help="data root to run in (default: a temporary folder)")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False) -> None:
    """Can strangers steer the learning loop? Prints, per scenario, what reached production.
    Runs its own stack on free ports over a copy of ./data/registry (trained when absent)."""
    from harness.drift.scenario import prepare_data_dir
    from services.common.settings import CommonSettings

    from .scenario import FULL, QUICK, SCENARIOS, run_redteam

    unknown = set(scenarios or []) - set(SCENARIOS)
    if unknown:
        typer.echo(f"unknown scenario(s) {', '.join(sorted(unknown))}; pick from {', '.join(SCENARIOS)}", err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="loopline-redteam-") as tmp:
        data = prepare_data_dir(workdir or Path(tmp), CommonSettings().registry, log=typer.echo)
        result = run_redteam(data, tuple(scenarios or SCENARIOS), QUICK if quick else FULL, log=typer.echo)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    typer.echo(f"red team: {'every scenario passed' if result['passed'] else 'FAILED'} in {result['seconds']:.0f} s")
    raise typer.Exit(0 if result["passed"] else 1)


def register(app: typer.Typer) -> None:
    app.command("redteam")(redteam)
