"""``loopline bench``: the performance harness (``make bench`` runs it with the defaults)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _ints(text: str, what: str = "concurrency levels") -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{what} must be positive integers")
    return values


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="tiny models, seconds-long cells: checks the harness, not speed")] = False,
    tasks: Annotated[str, typer.Option(help="comma-separated subset of vqa,qa,style")] = "vqa,qa,style",
    concurrency: Annotated[str, typer.Option(help="closed-loop concurrency levels")] = "1,4,8",
    qa_tokens: Annotated[str | None, typer.Option(help="QA context lengths in tokens (default 150,600)")] = None,
    cell_seconds: Annotated[float | None, typer.Option(help="time bound per cell (default 12, --quick 1)")] = None,
    out: Annotated[Path, typer.Option(help="results directory (git-ignored)")] = Path("bench/results"),
    cache: Annotated[Path | None, typer.Option(help="where built models are kept between runs")] = None,
    gateway: Annotated[bool, typer.Option(help="also measure through the gateway when it is installed")] = True,
    naive: Annotated[bool, typer.Option(help="run the naive baseline")] = True,
    baseline_settings: Annotated[bool, typer.Option(
        "--untuned", help="fp32 and the pre-issue-13 settings (5 ms batch wait, 512-token QA windows)")] = False,
    label: Annotated[str | None, typer.Option(help="name of the run in the results directory")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="service setting for this run, e.g. --set LOOPLINE_VQA_MAX_WAIT_MS=100 (repeatable)")] = None,
    efficiency: Annotated[bool, typer.Option(help="count FLOPs and time the batched components")] = True,
    accuracy: Annotated[bool, typer.Option(help="bf16/int8 answer agreement with fp32 on generated inputs")] = True,
    accuracy_inputs: Annotated[int, typer.Option(min=10, help="generated inputs per task for the agreement table")] = 200,
    anchors: Annotated[bool, typer.Option(help="VQA, QA and style in ONNX Runtime and OpenVINO in-process (pip install "
                                          "'loopline[bench]')")] = True,
    profile: Annotated[bool, typer.Option("--profile", help="where a single request's time goes: per-stage "
                                          "timings of the c=1 cells and of the parts of predict")] = False,
    peers: Annotated[str | None, typer.Option(
        help="peer servers on the same VQA and QA models, each in its own venv under the cache (built on first use): "
             "comma-separated subset of bentoml,mlserver,kserve, or 'none' (default: all three; none with --quick)")] = None,
) -> None:
    """Benchmark every service against the naive baseline and the hardware peak; write JSON, Markdown, PNG."""
    from services.common.tasks import TASKS

    from .models import ModelSizes
    from .runner import UNTUNED_ENV, BenchConfig, BenchRun

    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TASKS]
    if unknown or not chosen:
        raise typer.BadParameter(f"unknown task(s) {unknown}; expected a subset of {','.join(TASKS)}")
    levels = _ints(concurrency)
    config = BenchConfig(out_dir=out, cache_dir=cache or out / "cache", tasks=chosen, concurrency=levels,
                         naive_concurrency=(levels[0], levels[-1]) if len(levels) > 1 else levels,
                         gateway=gateway, naive=naive, label=label or ("quick" if quick else "full"))
    if quick:
        config.sizes = ModelSizes.tiny()
        config.cell_seconds, config.cell_max_requests, config.requests_per_client = 1.0, 40, 1
        config.qa_tokens, config.relay_seconds = (150, 600), 1.0
    if cell_seconds is not None:
        config.cell_seconds = cell_seconds
    if qa_tokens is not None:
        config.qa_tokens = _ints(qa_tokens, "QA context lengths")
    if baseline_settings:
        config.service_env = dict(UNTUNED_ENV)
    for item in setting or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("LOOPLINE_"):
            raise typer.BadParameter(f"--set expects LOOPLINE_<NAME>=<value>, got {item!r}")
        config.service_env[key] = value
    config.efficiency, config.accuracy, config.profile = efficiency, accuracy, profile
    config.accuracy_inputs, config.anchors = accuracy_inputs, anchors
    from .peers.envs import PEERS

    peer_names = "none" if peers is None and quick else (peers or ",".join(PEERS))
    chosen_peers = () if peer_names.strip() in ("", "none") else tuple(p.strip() for p in peer_names.split(",") if p.strip())
    if any(p not in PEERS for p in chosen_peers):
        raise typer.BadParameter(f"--peers expects a subset of {','.join(PEERS)} or 'none', got {peers!r}")
    config.peers = chosen_peers
    started = time.monotonic()
    results = BenchRun(config, progress=lambda msg: console.print(
        f"[dim]bench {time.monotonic() - started:6.1f}s[/dim] {msg}")).run()
    console.print(f"wrote {out}/{results['started']}-{results['label']}/results.md (+ .json, latency.png) "
                  f"in {results['duration_s']} s")
    for goal in results["goals"]:
        colour = {"yes": "green", "NO": "red"}.get(goal["met"], "yellow")
        console.print(f"[{colour}]{goal['met']:>3}[/{colour}] {goal['goal']}: {goal['measured']} ({goal['baseline']})")
    if results.get("peers_status"):
        from .peers.report import best_peer_ratios, peer_rows, peers_summary

        console.print(f"peers ({peers_summary(results)}); ratios Loopline / peer:")
        rows = peer_rows(results)
        for r in rows:
            console.print(f"  {r['task']:4s} {r['workload']:30s} {r['server']:9s} p50 c=low {r['p50_c_low']} ms, "
                          f"req/s c=top {r['rps_c_top']}, errors {r['errors']}, same answer {r['same_answer']}, "
                          f"p50 ratio {r['ratio_p50_c_low']}, req/s ratio {r['ratio_rps_c_top']}")
        for b in best_peer_ratios(rows):
            console.print(f"  Loopline / best peer, {b['task']} {b['workload']}: p50 c=low {b['p50_ratio']} "
                          f"({b['p50_peer']}), req/s c=top {b['rps_ratio']} ({b['rps_peer']})")

def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
