"""How long the offline bootstrap (`loopline models bootstrap --tiny`) takes, one model at a time
and several at once, and whether the models come out the same.

    python scripts/bootstrap_time.py [--jobs 2 1] [--out bench-results/bootstrap.json]

Each run builds every tiny model into a fresh registry, in a child process timed by the kernel
(wall, CPU seconds of the process and its workers, peak RSS of the largest process). The report
names the CPU it ran on and the load before each run: compare runs of one report only, on a
machine with nothing else to do.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.common.torch_shared import cpu_kind  # noqa: E402  (after the checkout is on the path)


def weights(registry: Path) -> dict[str, dict[str, str]]:
    """model -> {weights file: sha256} of version 1."""
    out = {}
    for manifest in sorted(registry.glob("*/1/manifest.json")):
        files = json.loads(manifest.read_text())["files"]
        out[manifest.parent.parent.name] = {k: v for k, v in files.items() if k.endswith(".safetensors")}
    return out


def run(jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="loopline-bootstrap-time-") as tmp:
        env = {**os.environ, "LOOPLINE_DATA_DIR": tmp, "HF_HUB_OFFLINE": "1"}
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "services.cli", "models", "bootstrap", "--tiny", "--jobs", str(jobs)],
                              cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            raise SystemExit(f"bootstrap --jobs {jobs} failed:\n{done.stderr[-3000:]}")
        return {"jobs": jobs, "wall_s": round(wall, 1), "load_before": round(load, 2),
                "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
                "peak_rss_mb": round(after.ru_maxrss / 1024), "weights": weights(Path(tmp) / "registry")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[2, 1], help="the --jobs values to time, in order")
    parser.add_argument("--out", type=Path, help="also write the report here as JSON")
    args = parser.parse_args()
    report = {"cpu": cpu_kind().kind, "cores": len(os.sched_getaffinity(0)), "runs": [run(j) for j in args.jobs]}
    first = report["runs"][0]["weights"]
    report["same_weights"] = all(r["weights"] == first for r in report["runs"])
    print(f"CPU: {report['cpu']}, {report['cores']} cores")
    print("| --jobs | wall | CPU-seconds | peak RSS | load before |\n|---|---|---|---|---|")
    for r in report["runs"]:
        print(f"| {r['jobs']} | {r['wall_s'] // 60:.0f} min {r['wall_s'] % 60:.0f} s | {r['cpu_s']} | "
              f"{r['peak_rss_mb']} MB | {r['load_before']} |")
    print("same weights in every run:", report["same_weights"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["same_weights"] else 1


if __name__ == "__main__":
    sys.exit(main())
