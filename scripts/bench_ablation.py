"""In-process A/B timings behind docs/performance.md: each speed option against its default.

Usage: python scripts/bench_ablation.py [vqa|qa|style|int8 ...]   (real-size models from the bench cache)
Variants are interleaved and the best of a few repeats is kept, since the machine is shared.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REG = Path("bench/results/cache/registry-base-base-full")


CPU: list[float] = []


def best(fn: Any, repeats: int = 3) -> float:
    """Best wall time; the matching best CPU time (all threads) goes to CPU[-1]: on a shared
    machine CPU seconds compare options better than wall seconds."""
    fn()
    out = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out = min(out, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    CPU.append(cpu)
    return out


def runtime(task: str, **overrides: Any) -> Any:
    from services.common.tasks import task_settings
    from services.qa.runtime import QaRuntime
    from services.style.runtime import StyleRuntime
    from services.vqa.runtime import VqaRuntime

    cls = {"vqa": VqaRuntime, "qa": QaRuntime, "style": StyleRuntime}[task]
    model = {"vqa": "vqa-blip", "qa": "qa-extractive", "style": "style-mosaic"}[task]
    rt = cls(task_settings(task, warmup=False, **overrides), Path("data"))
    cls.configure_threads(rt.settings)
    rt.load(REG / model / "1", rt.read_manifest(REG / model / "1"))
    return rt


def vqa() -> None:
    from harness.bench.workloads import vqa_workload
    from services.vqa.runtime import VqaRequest

    for opts in ({"bf16": "off"}, {"bf16": "on"}, {"quantize": "int8"}):
        try:
            rt = runtime("vqa", **opts)
        except Exception as exc:  # an option this checkout does not have yet
            print("vqa", opts, "skipped:", exc)
            continue
        item = rt.prepare(VqaRequest(**vqa_workload().body))
        t0 = time.perf_counter()
        for _ in range(5):
            rt.prepare(VqaRequest(**vqa_workload().body))
        prep = (time.perf_counter() - t0) / 5
        b1 = best(lambda rt=rt, item=item: rt.predict([item]))
        b8 = best(lambda rt=rt, item=item: rt.predict([item] * 8), repeats=1)
        print(f"vqa {opts}: prepare {prep * 1000:.0f} ms, batch1 {b1:.3f} s (cpu {CPU[-2]:.2f}), "
              f"batch8 {b8:.3f} s ({b8 / 8:.3f} s/req, cpu {CPU[-1] / 8:.2f} s/req)", flush=True)
        rt.unload()


def qa() -> None:
    from transformers import AutoTokenizer

    from harness.bench.workloads import qa_workloads

    tok = AutoTokenizer.from_pretrained(REG / "qa-extractive" / "1")
    works = qa_workloads(tok)
    for opts in ({"bf16": "off"}, {"bf16": "on"}, {"quantize": "int8"}, {"bf16": "on", "max_seq_len": 384}):
        try:
            rt = runtime("qa", **opts)
        except Exception as exc:
            print("qa", opts, "skipped:", exc)
            continue
        for w in works:
            item = rt.prepare(rt.request_model(**w.body))
            b1 = best(lambda rt=rt, item=item: rt.predict([item]))
            b8 = best(lambda rt=rt, item=item: rt.predict([item] * 8), repeats=2)
            print(f"qa {opts} {w.name}: batch1 {b1 * 1000:.0f} ms (cpu {CPU[-2] * 1000:.0f}), batch8 {b8 * 1000:.0f} ms "
                  f"({b8 / 8 * 1000:.0f} ms/req, cpu {CPU[-1] / 8 * 1000:.0f} ms/req)", flush=True)
        rt.unload()


def style() -> None:
    from harness.bench.workloads import style_workload

    for opts in ({}, {"jit_compile": True}):
        try:
            rt = runtime("style", **opts)
        except Exception as exc:
            print("style", opts, "skipped:", exc)
            continue
        item = rt.prepare(rt.request_model(**style_workload().body))
        b1 = best(lambda rt=rt, item=item: rt.predict([item]), repeats=2)
        b4 = best(lambda rt=rt, item=item: rt.predict([item] * 4), repeats=1)
        print(f"style {opts}: batch1 {b1:.3f} s (cpu {CPU[-2]:.2f}), batch4 {b4:.3f} s ({b4 / 4:.3f} s/req, "
              f"cpu {CPU[-1] / 4:.2f} s/req)", flush=True)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["vqa", "qa", "style"]:
        {"vqa": vqa, "qa": qa, "style": style}[name]()
