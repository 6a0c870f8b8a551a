"""Would "bf16 with an fp32 recheck of close calls" pay for QA? Measures it in-process, no service.

The idea: answer in bf16 and keep the answer when its span wins by a margin that bf16's error
cannot overturn; recompute only the close calls in fp32. Answers would then be fp32's by
construction, so the 1 % guard could not refuse it, and the speed-up would be

    cost / fp32 cost = t_bf16 / t_fp32 + (share of close calls)

This script measures every term on the QA model's encoder in OpenVINO (bf16 and f32 compiled
from one conversion), on the guard's generated in-world inputs:

- agreement of plain bf16 with f32 (what the guard judges today);
- eps: the largest change bf16 makes to a start logit plus the largest change to an end logit,
  over a request's windows. A span's score (start + end logit) moves by at most eps, so a bf16
  winner whose margin over the runner-up exceeds 2 x eps is the f32 winner too;
- the share of requests whose bf16 margin clears 2 x max(eps) (rigorous) and 2 x median(eps);
- t_bf16 / t_fp32 at batch 8, and the cost ratio above.

    python scripts/bench_bf16_gate.py [VERSION_DIR] [INPUTS]

VERSION_DIR defaults to the bench's cached real-size (random-weight) DistilBERT; name a trained
world model's version (e.g. one in the test registry cache) to see a trained model's margins.
Needs a CPU with native bf16 (else OpenVINO's bf16 is emulated and the timing is meaningless).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.bench.efficiency import task_settings
from harness.bench.models import MODEL_OF_TASK
from services.common.torch_shared import cpu_kind, set_threads
from services.qa.runtime import QaRuntime

REAL_SIZE = Path("bench/results/cache/registry-base-base-full") / MODEL_OF_TASK["qa"] / "1"


def top_two(runtime: QaRuntime, starts: np.ndarray, ends: np.ndarray, windows: list[int], seq_ids: list[list[Any]],
            k: int = 30) -> tuple[tuple[int, int, int], float]:
    """The best span (window, start, end) of one request and its score margin over the runner-up."""
    scored: list[tuple[float, tuple[int, int, int]]] = []
    for w in windows:
        mask = np.array([sid == 1 for sid in seq_ids[w]])
        s = np.where(mask, starts[w], -np.inf)
        e = np.where(mask, ends[w], -np.inf)
        for i in np.argsort(-s)[:k]:
            for j in np.argsort(-e)[:k]:
                if mask[i] and mask[j] and i <= j < i + runtime.settings.max_answer_tokens:
                    scored.append((float(s[i] + e[j]), (w, int(i), int(j))))
    scored.sort(reverse=True)
    if len(scored) < 2:
        return scored[0][1], float("inf")
    return scored[0][1], scored[0][0] - scored[1][0]


def main() -> None:
    version_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REAL_SIZE
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    if not (version_dir / "manifest.json").is_file():
        sys.exit(f"{version_dir} is not a model version: run `make bench` once, or name a QA version directory")
    kind = cpu_kind()
    if not kind.native_bf16:
        sys.exit(f"{kind.summary()}: no native bf16, OpenVINO's bf16 would be emulated; nothing to measure")
    set_threads(2)
    settings = task_settings("qa", {}, 2).model_copy(update={"bf16": "off", "backend": "torch", "warmup": False})
    runtime = QaRuntime(settings, Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    compile_for = runtime._convert_openvino()
    f32, bf16 = compile_for(False), compile_for(True)
    items = runtime.agreement_inputs(count)
    rows = []
    times: dict[str, list[float]] = {"f32": [], "bf16": []}
    for lo in range(0, len(items), 8):
        batch = items[lo:lo + 8]
        enc = runtime.tokenizer([q for q, _ in batch], [c for _, c in batch], truncation="only_second",
                                max_length=runtime.max_len, stride=runtime.stride, return_overflowing_tokens=True,
                                padding="longest", return_tensors="np")
        sample_of = enc["overflow_to_sample_mapping"].tolist()
        seq_ids = [enc.sequence_ids(w) for w in range(len(sample_of))]
        feed = {n: enc[n].astype(np.int64) for n in runtime.encoder_inputs()}
        logits = {}
        for name, engine in (("f32", f32), ("bf16", bf16)):
            started = time.perf_counter()
            start, end = engine(feed)
            times[name].append(time.perf_counter() - started)
            logits[name] = (np.asarray(start, np.float32), np.asarray(end, np.float32))
        for sample in range(len(batch)):
            windows = [w for w, s in enumerate(sample_of) if s == sample]
            span32, _ = top_two(runtime, *logits["f32"], windows, seq_ids)
            span16, margin16 = top_two(runtime, *logits["bf16"], windows, seq_ids)
            eps = 0.0
            for w in windows:
                mask = np.array([sid == 1 for sid in seq_ids[w]])
                eps = max(eps, float(np.abs(logits["f32"][0][w] - logits["bf16"][0][w])[mask].max()
                                     + np.abs(logits["f32"][1][w] - logits["bf16"][1][w])[mask].max()))
            rows.append((span32 == span16, margin16, eps))
    agree = statistics.mean(float(a) for a, _, _ in rows)
    eps_all = [e for _, _, e in rows]
    speed = statistics.median(times["bf16"][1:]) / statistics.median(times["f32"][1:])
    report: dict[str, Any] = {"cpu": kind.summary(), "version": str(version_dir), "inputs": len(rows),
                              "plain_bf16_agreement": round(agree, 4), "t_bf16_over_t_f32": round(speed, 3),
                              "eps_max": round(max(eps_all), 5), "eps_median": round(statistics.median(eps_all), 5)}
    for label, eps in (("rigorous", max(eps_all)), ("median_eps", statistics.median(eps_all))):
        kept = [(a, m) for a, m, _ in rows if m > 2 * eps]
        share = len(kept) / len(rows)
        report[label] = {"threshold": round(2 * eps, 5), "answered_in_bf16": round(share, 3),
                         "wrong_among_kept": sum(1 for a, _ in kept if not a),
                         "cost_over_f32": round(speed + (1 - share), 3)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
