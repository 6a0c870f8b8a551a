"""The peer table: one row per task input and server, from cells taken in the same run."""

from __future__ import annotations

from typing import Any

TASK_ORDER = ("vqa", "qa")


def _cell(results: dict[str, Any], task: str, workload: str, variant: str, c: int) -> dict[str, Any]:
    return next((r for r in results.get("cells", []) if (r["task"], r["workload"], r["variant"], r["concurrency"])
                 == (task, workload, variant, c)), {})


def _open(results: dict[str, Any], task: str, workload: str, variant: str) -> dict[str, Any]:
    return next((r for r in results.get("open_loop", []) if r["task"] == task and r["workload"] == workload
                 and r.get("variant", "direct") == variant), {})


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _order(workload: str) -> int:
    head = workload.split("-")[0]
    return int(head) if head.isdigit() else 0


def peers_summary(results: dict[str, Any]) -> str:
    """``vqa: bentoml ran, ...; qa: ...`` from ``peers_status`` (task -> peer -> status)."""
    return "; ".join(f"{task}: " + ", ".join(f"{p} {s}" for p, s in status.items())
                     for task, status in results.get("peers_status", {}).items())


def peer_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task input: Loopline (direct) and each peer that ran, with the Loopline/peer ratios."""
    levels = results["config"]["concurrency"]
    low, top = min(levels), max(levels)
    rows = []
    for task in (t for t in TASK_ORDER if t in results.get("peers_status", {})):
        peers = [p for p, status in results["peers_status"][task].items() if status == "ran"]
        workloads = sorted({r["workload"] for r in results.get("cells", []) if r["task"] == task}, key=_order)
        for workload in workloads:
            ours_low, ours_top = _cell(results, task, workload, "direct", low), _cell(results, task, workload, "direct", top)
            answers = results.get("peer_answers", {}).get(workload, {})
            for name, variant in [("loopline", "direct"), *((p, f"peer:{p}") for p in peers)]:
                a, b = _cell(results, task, workload, variant, low), _cell(results, task, workload, variant, top)
                o = _open(results, task, workload, variant)
                if not a and not b:
                    continue
                rss = max([*(a.get("peak_rss_mb") or {}).values(), *(b.get("peak_rss_mb") or {}).values(), 0]) or None
                same = "-" if name == "loopline" else (
                    "yes" if answers.get(name, {}).get("same_as_loopline")
                    else f"NO: {answers.get(name, {}).get('answer')!r} vs {answers.get('loopline')!r}")
                rows.append({
                    "task": task, "workload": workload, "server": name,
                    "p50_c_low": a.get("p50_ms"), "p95_c_low": a.get("p95_ms"),
                    "p50_c_top": b.get("p50_ms"), "p95_c_top": b.get("p95_ms"), "rps_c_top": b.get("throughput_rps"),
                    "batch_c_top": b.get("mean_batch_size"),
                    "busy_c_top": b.get("model_busy"), "open_p50": o.get("p50_ms"), "open_p95": o.get("p95_ms"),
                    "errors": sum(x.get("errors", 0) for x in (a, b, o)), "peak_rss_mb": rss, "same_answer": same,
                    "ratio_p50_c_low": None if name == "loopline" else _ratio(ours_low.get("p50_ms"), a.get("p50_ms")),
                    "ratio_rps_c_top": None if name == "loopline" else _ratio(ours_top.get("throughput_rps"),
                                                                              b.get("throughput_rps"))})
    return rows


def best_peer_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task input: Loopline / best peer (lowest p50 at the lowest concurrency, highest req/s at the top)."""
    out = []
    for key in dict.fromkeys((r["task"], r["workload"]) for r in rows):
        ours = next((r for r in rows if (r["task"], r["workload"]) == key and r["server"] == "loopline"), None)
        peers = [r for r in rows if (r["task"], r["workload"]) == key and r["server"] != "loopline"]
        fast = min((r for r in peers if r["p50_c_low"]), key=lambda r: r["p50_c_low"], default=None)
        busy = max((r for r in peers if r["rps_c_top"]), key=lambda r: r["rps_c_top"], default=None)
        if ours is None or fast is None or busy is None:
            continue
        out.append({"task": key[0], "workload": key[1], "p50_peer": fast["server"],
                    "p50_ratio": _ratio(ours["p50_c_low"], fast["p50_c_low"]), "rps_peer": busy["server"],
                    "rps_ratio": _ratio(ours["rps_c_top"], busy["rps_c_top"])})
    return out


def peer_markdown(results: dict[str, Any], table: Any) -> list[str]:
    if not results.get("peers_status"):
        return []
    levels = results["config"]["concurrency"]
    low, top = min(levels), max(levels)
    rows = peer_rows(results)
    best = best_peer_ratios(rows)
    return ["", "## Peers: the same VQA and QA models in BentoML, MLServer and KServe (same run, same load generator)",
            "", f"Status: {peers_summary(results)}. Ratios are Loopline / peer: p50 below 1 and req/s above 1 favour "
            "Loopline. The open loop offers every server the same rate (70 % of Loopline's capacity at "
            f"c={top}). \"same answer\" compares the peer's answer text with Loopline's for the same input.", "",
            table(["task", "input", "server", f"p50 ms c={low}", f"p95 ms c={low}", f"p50 ms c={top}", f"p95 ms c={top}",
                   f"req/s c={top}", f"batch c={top}", f"model busy c={top}", "open p50 ms", "open p95 ms", "errors", "peak RSS MB",
                   "same answer", f"Loopline/peer p50 c={low}", f"Loopline/peer req/s c={top}"],
                  [[r["task"], r["workload"], r["server"], r["p50_c_low"], r["p95_c_low"], r["p50_c_top"],
                    r["p95_c_top"], r["rps_c_top"], r["batch_c_top"], r["busy_c_top"], r["open_p50"], r["open_p95"], r["errors"],
                    r["peak_rss_mb"], r["same_answer"], r["ratio_p50_c_low"], r["ratio_rps_c_top"]] for r in rows]),
            "", f"\"batch\" is the mean number of requests per model call at c={top} and \"model busy\" the share of the "
            "cell's wall time the model ran (Loopline: its batch metrics; peers: the lines their decoder logs, "
            "peers/batch_log.py); the rest is HTTP, protocol decoding and waiting for batch-mates.", "",
            "Loopline / best peer per input:", "",
            table(["task", "input", f"p50 c={low}: Loopline / best peer", f"req/s c={top}: Loopline / best peer"],
                  [[b["task"], b["workload"], f"{b['p50_ratio']} ({b['p50_peer']})",
                    f"{b['rps_ratio']} ({b['rps_peer']})"] for b in best])]
