"""``loopline soak``: the bounded soak (and a long schemathesis run) with its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def soak(duration: Annotated[float, typer.Option(help="seconds of load")] = 300.0,
             rate: Annotated[float, typer.Option(help="requests per second (open loop)")] = 10.0,
             fuzz_examples: Annotated[int, typer.Option(help="schemathesis examples per operation (0: skip)")] = 300,
             overload_burst: Annotated[int, typer.Option(help="concurrent requests past capacity (0: skip)")] = 300,
             max_rss_drift: Annotated[float, typer.Option(help="fail above this RSS drift after warm-up")] = 0.10,
             out: Annotated[Path, typer.Option(help="report folder")] = Path("bench/results"),
             readme: Annotated[Path | None, typer.Option(help="write the figures into this README's soak table")] = None,
             ) -> None:
        """Fixed-rate load through the gateway across tasks + feedback; fails on any 5xx, loss or leak."""
        from .soak import render_markdown, run_soak, write_readme, write_report

        summary = run_soak(duration_s=duration, rate=rate, fuzz_examples=fuzz_examples,
                           overload_burst_size=overload_burst)
        path = write_report(summary, out)
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "fuzz"}, indent=2))
        if "fuzz" in summary:
            typer.echo(f"fuzz: passed={summary['fuzz']['passed']} in {summary['fuzz']['seconds']} s")
        typer.echo(render_markdown(summary))
        typer.echo(f"report: {path}")
        if readme is not None:
            write_readme(summary, readme)
        drifts = [d for d in summary["rss_drift"].values() if d is not None]
        problems = []
        if summary["5xx"]:
            problems.append(f"{summary['5xx']} responses were 5xx")
        if summary["events_lost"] or summary["feedback_lost"]:
            problems.append(f"lost {summary['events_lost']} events and {summary['feedback_lost']} feedback")
        if drifts and max(drifts) > max_rss_drift:
            problems.append(f"RSS drifted {max(drifts):.1%} (limit {max_rss_drift:.0%})")
        over = summary.get("overload")
        if over and (over["other"] or not over["retry_after_on_every_rejection"] or over["recovered_after_s"] is None):
            problems.append(f"overload burst misbehaved: {over}")
        if "fuzz" in summary and not summary["fuzz"]["passed"]:
            problems.append("schemathesis found failures:\n" + summary["fuzz"]["output_tail"])
        if problems:
            typer.echo("SOAK FAILED: " + "; ".join(problems), err=True)
            raise typer.Exit(1)
        typer.echo("soak passed")
