"""The peer table: one row per server and QA input, from cells taken in the same run."""

from __future__ import annotations

from typing import Any


def _cell(results: dict[str, Any], workload: str, variant: str, c: int) -> dict[str, Any]:
    return next((r for r in results.get("cells", []) if (r["task"], r["workload"], r["variant"], r["concurrency"])
                 == ("qa", workload, variant, c)), {})


def _open(results: dict[str, Any], workload: str, variant: str) -> dict[str, Any]:
    return next((r for r in results.get("open_loop", []) if r["task"] == "qa" and r["workload"] == workload
                 and r.get("variant", "direct") == variant), {})


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def peer_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per QA input: Loopline (direct) and each peer, with the Loopline/peer ratios."""
    peers = [p for p, status in results.get("peers_status", {}).items() if status == "ran"]
    levels = results["config"]["concurrency"]
    low, top = min(levels), max(levels)
    workloads = sorted({r["workload"] for r in results.get("cells", []) if r["task"] == "qa"},
                       key=lambda w: int(w.split("-")[0]) if w.split("-")[0].isdigit() else 0)
    rows = []
    for workload in workloads:
        ours_low, ours_top = _cell(results, workload, "direct", low), _cell(results, workload, "direct", top)
        answers = results.get("peer_answers", {}).get(workload, {})
        for name, variant in [("loopline", "direct"), *((p, f"peer:{p}") for p in peers)]:
            a, b, o = _cell(results, workload, variant, low), _cell(results, workload, variant, top), \
                _open(results, workload, variant)
            if not a and not b:
                continue
            rss = max([*(a.get("peak_rss_mb") or {}).values(), *(b.get("peak_rss_mb") or {}).values(), 0]) or None
            same = "-" if name == "loopline" else (
                "yes" if answers.get(name, {}).get("same_as_loopline") else f"NO: {answers.get(name, {}).get('answer')!r}")
            rows.append({
                "workload": workload, "server": name, "p50_c_low": a.get("p50_ms"), "p95_c_low": a.get("p95_ms"),
                "p50_c_top": b.get("p50_ms"), "p95_c_top": b.get("p95_ms"), "rps_c_top": b.get("throughput_rps"),
                "open_p50": o.get("p50_ms"), "open_p95": o.get("p95_ms"),
                "errors": sum(x.get("errors", 0) for x in (a, b, o)), "peak_rss_mb": rss, "same_answer": same,
                "ratio_p50_c_low": None if name == "loopline" else _ratio(ours_low.get("p50_ms"), a.get("p50_ms")),
                "ratio_rps_c_top": None if name == "loopline" else _ratio(ours_top.get("throughput_rps"),
                                                                          b.get("throughput_rps"))})
    return rows


def peer_markdown(results: dict[str, Any], table: Any) -> list[str]:
    if not results.get("peers_status"):
        return []
    levels = results["config"]["concurrency"]
    low, top = min(levels), max(levels)
    rows = peer_rows(results)
    status = ", ".join(f"{p} {s}" for p, s in results["peers_status"].items())
    return ["", "## Peers: the same QA model in BentoML, MLServer and KServe (same run, same load generator)", "",
            f"Status: {status}. Ratios are Loopline / peer: p50 below 1 and req/s above 1 favour Loopline. "
            "The open loop offers every server the same rate (70 % of Loopline's capacity at "
            f"c={top}). \"same answer\" compares the peer's answer text with Loopline's for the same input.", "",
            table(["input", "server", f"p50 ms c={low}", f"p95 ms c={low}", f"p50 ms c={top}", f"p95 ms c={top}",
                   f"req/s c={top}", "open p50 ms", "open p95 ms", "errors", "peak RSS MB", "same answer",
                   f"Loopline/peer p50 c={low}", f"Loopline/peer req/s c={top}"],
                  [[r["workload"], r["server"], r["p50_c_low"], r["p95_c_low"], r["p50_c_top"], r["p95_c_top"],
                    r["rps_c_top"], r["open_p50"], r["open_p95"], r["errors"], r["peak_rss_mb"], r["same_answer"],
                    r["ratio_p50_c_low"], r["ratio_rps_c_top"]] for r in rows])]
