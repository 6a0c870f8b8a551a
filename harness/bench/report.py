"""Results as JSON, a Markdown table and a PNG plot; the goals of issue 7 checked against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def find(cells: list[dict[str, Any]], task: str, workload: str, variant: str, c: int) -> dict[str, Any] | None:
    for row in cells:
        if (row["task"], row["workload"], row["variant"], row["concurrency"]) == (task, workload, variant, c):
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def workloads_of(cells: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for row in cells:
        key = (row["task"], row["workload"])
        if key not in seen:
            seen.append(key)
    return seen


def evaluate_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per goal and workload: measured figure, baseline beside it, met or not."""
    cells = results.get("cells", [])
    top = max((r["concurrency"] for r in cells), default=8)
    goals: list[dict[str, Any]] = []

    def add(goal: str, measured: str, baseline: str, met: bool | None) -> None:
        goals.append({"goal": goal, "measured": measured, "baseline": baseline,
                      "met": "n/a" if met is None else ("yes" if met else "NO")})

    for task, workload in workloads_of(cells):
        ours = find(cells, task, workload, "direct", top)
        naive_rows = [r for r in cells if (r["task"], r["workload"], r["variant"]) == (task, workload, "naive")]
        if ours and naive_rows:
            # judged against the naive server's best throughput at any concurrency (stricter than
            # its c=top figure, which one-at-a-time serving can make worse than its c=1 figure)
            best = max(naive_rows, key=lambda r: r["throughput_rps"])
            same = find(cells, task, workload, "naive", top)
            ratio = _ratio(ours["throughput_rps"], best["throughput_rps"])
            add(f"{task} ({workload}): throughput at c={top} >= 2x naive",
                f"{ours['throughput_rps']} req/s ({ratio}x the best naive)",
                f"naive best {best['throughput_rps']} req/s (c={best['concurrency']})"
                + (f"; naive c={top}: {same['throughput_rps']} req/s "
                   f"({_ratio(ours['throughput_rps'], same['throughput_rps'])}x)" if same else ""),
                ratio is not None and ratio >= 2)
    for task, workload in workloads_of(cells):
        hi, one = find(cells, task, workload, "direct", top), find(cells, task, workload, "direct", 1)
        if hi and one and hi["p95_ms"] and one["p50_ms"]:
            ratio = _ratio(hi["p95_ms"], one["p50_ms"])
            add(f"{task} ({workload}): p95 at c={top} <= 2x own p50 at c=1", f"{hi['p95_ms']} ms ({ratio}x)",
                f"p50 at c=1: {one['p50_ms']} ms", ratio is not None and ratio <= 2)
    relay = results.get("relay", {})
    if relay.get("status") == "ran":
        added = relay.get("added_p50_ms")
        add("gateway: added p50 latency < 3 ms (instant backend, c=1)", f"{added} ms",
            f"direct p50 {relay['direct_c1']['p50_ms']} ms, via gateway {relay['gateway_c1']['p50_ms']} ms",
            added is not None and added < 3)
        rps = relay["gateway_c16"]["throughput_rps"]
        add("gateway alone relays >= 1,000 small requests/s", f"{rps} req/s at c=16 "
            f"({relay['gateway_c16']['errors']} errors)", "instant stub backend", rps >= 1000)
    else:
        add("gateway overhead and relay capacity", "not measured", relay.get("status", "skipped"), None)
    eff = results.get("efficiency", {})
    for task, label in (("vqa", "VQA vision encoder"), ("qa", "batched QA")):
        if task in eff:
            comp = eff[task]["component"]
            add(f"{label} >= 50% of the measured {eff[task]['precision']} matmul peak",
                f"{comp['fraction_of_peak']:.0%} ({comp['gflops']} GFLOP/s, {comp['name']})",
                f"peak {results['peak'][eff[task]['precision'] + '_gflops']} GFLOP/s", comp["fraction_of_peak"] >= 0.5)
    vqa = [(t, w) for t, w in workloads_of(cells) if t == "vqa"]
    if vqa:
        one, naive = find(cells, *vqa[0], "direct", 1), find(cells, *vqa[0], "naive", 1)
        if one:
            add("single-request VQA (BLIP-base) p50 < 1.5 s", f"{one['p50_ms']} ms",
                f"naive {naive['p50_ms'] if naive else '-'} ms; the seeds' BLIP (capfilt-large, a ViT-B): 90 s",
                one["p50_ms"] is not None and one["p50_ms"] < 1500)
    return goals


def service_efficiency(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Whole-service FLOP rate at the highest concurrency: FLOPs/request x throughput / peak."""
    rows = []
    cells = results.get("cells", [])
    top = max((r["concurrency"] for r in cells), default=8)
    for task, workload in workloads_of(cells):
        eff = results.get("efficiency", {}).get(task)
        row = find(cells, task, workload, "direct", top)
        if not eff or not row or workload not in eff["flops_per_request"]:
            continue
        flops = eff["flops_per_request"][workload]
        gflops = flops * row["throughput_rps"] / 1e9
        peak = results["peak"][f"{eff['precision']}_gflops"]
        rows.append({"task": task, "workload": workload, "gflop_per_request": round(flops / 1e9, 2),
                     "precision": eff["precision"], "service_gflops": round(gflops, 1),
                     "fraction_of_peak": round(gflops / peak, 3)})
    return rows


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [f"# Loopline benchmark {results['started']} ({results['label']})", "",
             f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB, avx512_bf16: "
             f"{m['avx512_bf16']}; {m['threads']} intra-op threads per service; load average at start "
             f"{m['loadavg_start']}, at end {m.get('loadavg_end')}; torch {m['torch']}, transformers "
             f"{m['transformers']}, Python {m['python']}. Run took {results.get('duration_s')} s.", "",
             f"Matmul peak (measured): fp32 {results['peak']['fp32_gflops']} GFLOP/s, bf16 "
             f"{results['peak']['bf16_gflops']} GFLOP/s.", "",
             f"Gateway variant: {results.get('gateway_status')}. Service settings: "
             f"`{' '.join(f'{k}={v}' for k, v in results['config']['service_env'].items())}`.", "",
             "## Goals", "",
             _table(["goal", "measured", "baseline", "met"],
                    [[g["goal"], g["measured"], g["baseline"], g["met"]] for g in evaluate_goals(results)]), "",
             "## Every cell (closed loop)", "",
             _table(["task", "input", "variant", "c", "ok", "err", "p50 ms", "p95 ms", "p99 ms", "req/s",
                     "mean batch", "peak RSS MB"],
                    [[r["task"], r["workload"], r["variant"], r["concurrency"], r["requests"], r["errors"],
                      r["p50_ms"], r["p95_ms"], r["p99_ms"], r["throughput_rps"], r.get("mean_batch_size"),
                      ", ".join(f"{k} {v}" for k, v in r.get("peak_rss_mb", {}).items())]
                     for r in results.get("cells", [])])]
    relay = results.get("relay", {})
    if relay.get("status") == "ran":
        parts += ["", "## Gateway against an instant backend", "",
                  _table(["path", "c", "ok", "err", "p50 ms", "p95 ms", "req/s"],
                         [[name, r["concurrency"], r["requests"], r["errors"], r["p50_ms"], r["p95_ms"],
                           r["throughput_rps"]]
                          for name, r in (("stub direct", relay["direct_c1"]), ("via gateway", relay["gateway_c1"]),
                                          ("via gateway", relay["gateway_c16"]))])]
    eff = results.get("efficiency", {})
    if eff:
        parts += ["", "## Efficiency", "",
                  _table(["task", "precision", "component", "GFLOP", "s", "GFLOP/s", "of peak"],
                         [[t, e["precision"], e["component"]["name"], round(e["component"]["flops"] / 1e9, 1),
                           e["component"]["seconds"], e["component"]["gflops"],
                           f"{e['component']['fraction_of_peak']:.0%}"] for t, e in eff.items()]), "",
                  _table(["task", "input", "GFLOP/request", "precision", f"service GFLOP/s at c={max(results['config']['concurrency'])}",
                          "of peak"],
                         [[r["task"], r["workload"], r["gflop_per_request"], r["precision"], r["service_gflops"],
                           f"{r['fraction_of_peak']:.0%}"] for r in service_efficiency(results)])]
    cost = results.get("precision_cost")
    if cost:
        parts += ["", "## Precision cost on the eval sets in data/samples (random weights: agreement matters)", "",
                  _table(["model size / task / precision", "n", "exact match", "agrees with fp32",
                          "mean abs confidence change"],
                         [[k, v["n"], v["exact_match"], v["agrees_with_fp32"], v["mean_abs_confidence_change"]]
                          for k, v in cost.items()])]
    if results.get("notes"):
        parts += ["", "## Notes", "", *[f"- {n}" for n in results["notes"]]]
    return "\n".join(parts) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results.get("cells", [])
    panels = workloads_of(cells)
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7), squeeze=False)
    colors = {"naive": "tab:red", "direct": "tab:blue", "gateway": "tab:green"}
    for col, (task, workload) in enumerate(panels):
        lat, thr = axes[0][col], axes[1][col]
        for variant, color in colors.items():
            rows = sorted((r for r in cells if (r["task"], r["workload"], r["variant"]) == (task, workload, variant)
                           and r["p50_ms"] is not None), key=lambda r: r["concurrency"])
            if not rows:
                continue
            xs = [r["concurrency"] for r in rows]
            lat.plot(xs, [r["p50_ms"] for r in rows], "o-", color=color, label=f"{variant} p50")
            lat.plot(xs, [r["p95_ms"] for r in rows], "x--", color=color, alpha=0.6, label=f"{variant} p95")
            thr.plot(xs, [r["throughput_rps"] for r in rows], "o-", color=color, label=variant)
        lat.set_title(f"{task}: {workload}", fontsize=9)
        lat.set_ylabel("latency (ms)")
        thr.set_ylabel("throughput (req/s)")
        thr.set_xlabel("concurrency")
        lat.legend(fontsize=7)
        thr.legend(fontsize=7)
        for ax in (lat, thr):
            ax.grid(alpha=0.3)
    fig.suptitle(f"Loopline bench {results['started']} ({results['label']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], run_dir: Path) -> None:
    results["goals"] = evaluate_goals(results)
    results["service_efficiency"] = service_efficiency(results)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (run_dir / "results.md").write_text(markdown(results), encoding="utf-8")
    plot(results, run_dir / "latency.png")
    latest = run_dir.parent
    for name in ("results.json", "results.md", "latency.png"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, latest / f"latest-{results['label']}-{name}")
