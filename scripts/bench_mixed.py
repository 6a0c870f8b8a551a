"""Three services sharing the cores: how the thread settings hold up when VQA, QA and style are
all busy at once (what `make up` on a small machine does), against each service alone.

For each thread variant the three services are started on the real-size registry that `make bench`
caches (bench/results/cache/, run `make bench` once first); each task is driven alone for
``--seconds`` (closed loop, c=4), then all three together as long. Printed per variant:
requests/s alone and mixed, and the "work done" of the mixed run = the sum over tasks of mixed /
alone throughput, against the variant's own solo figures and against the default variant's
(1.0 = the cores did as much as one default service alone; below 1.0 the services got in each
other's way). Results go to bench/results/<stamp>-mixed.json.

    python scripts/bench_mixed.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from harness.bench.load import closed_loop
from harness.bench.runner import ANSWER_KEY, BenchConfig, BenchRun
from services.common.settings import default_threads

CONCURRENCY = 4
THREADS = default_threads()
VARIANTS: dict[str, dict[str, str]] = {
    f"default: {THREADS} threads each": {},
    "1 thread each": {f"LOOPLINE_{t}_NUM_THREADS": "1" for t in ("VQA", "QA", "STYLE")},
    f"{THREADS} threads each, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def _drive(urls: dict[str, str], bodies: dict[str, list[bytes]], seconds: float) -> dict[str, dict[str, float]]:
    async def main() -> dict[str, dict[str, float]]:
        results = await asyncio.gather(*[
            closed_loop(urls[t] + "/v1/predict", bodies[t], CONCURRENCY, 10_000, seconds, min_requests=CONCURRENCY,
                        expect_key=ANSWER_KEY[t]) for t in urls])
        return {t: {k: v for k, v in r.summary().items() if k in ("throughput_rps", "p50_ms", "errors")}
                for t, r in zip(urls, results, strict=True)}
    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each solo and mixed run")
    args = parser.parse_args()
    first: dict[str, dict[str, float]] | None = None
    out: dict[str, object] = {"threads": THREADS, "concurrency": CONCURRENCY, "seconds": args.seconds, "variants": {}}
    for name, env in VARIANTS.items():
        config = BenchConfig(naive=False, gateway=False, label="mixed", service_env=dict(env))
        run = BenchRun(config, progress=lambda m: print(f"  {m}", flush=True))
        try:
            run.prepare(build=False)
        except FileNotFoundError as exc:
            raise SystemExit(str(exc)) from None
        servers = run.start_servers()
        try:
            workloads = run.make_workloads()
            bodies = {t: [workloads[t][0].encoded()] for t in config.tasks}
            urls = {t: s.url for t, s in servers.services.items()}
            _drive(urls, bodies, 3.0)  # warm every service under load once
            solo = {t: _drive({t: urls[t]}, bodies, args.seconds)[t] for t in urls}
            mixed = _drive(urls, bodies, args.seconds)
        finally:
            for server in servers.all():
                server.stop()
        work = sum(mixed[t]["throughput_rps"] / solo[t]["throughput_rps"] for t in urls if solo[t]["throughput_rps"])
        first = first or solo  # the default variant's solo figures: one yardstick for every variant
        vs_default = sum(mixed[t]["throughput_rps"] / first[t]["throughput_rps"] for t in urls
                         if first[t]["throughput_rps"])
        out["variants"][name] = {"env": env, "solo": solo, "mixed": mixed, "work_done": round(work, 3),  # type: ignore[index]
                                 "work_done_vs_default_solo": round(vs_default, 3)}
        print(f"{name}: work done mixed {work:.2f} of its own solo, {vs_default:.2f} of the default's; " + "; ".join(
            f"{t} alone {solo[t]['throughput_rps']} req/s, mixed {mixed[t]['throughput_rps']} req/s" for t in urls),
            flush=True)
    path = Path("bench/results") / f"{time.strftime('%Y%m%d-%H%M%S')}-mixed.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
