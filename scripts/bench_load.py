"""How long a version takes to load on the OpenVINO backend: converting at every load, converting
and keeping the conversion (the first load with the cache on), and reading it back (every later
load: a restart, a rollback, a new replica). Runs on the real-size models `make bench` caches in
bench/results/cache/ and prints JSON.

    python scripts/bench_load.py [vqa|qa]

It removes that task's entries from the bench registry's .openvino-cache first, so the figures
are cold-cache ones (the weights themselves stay in the page cache after the first load).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from harness.bench.efficiency import task_settings
from harness.bench.models import MODEL_OF_TASK
from services.common.tasks import get_task
from services.common.torch_shared import cpu_kind, set_threads

REGISTRY = Path("bench/results/cache/registry-base-base-full")


def timed_load(task: str, version_dir: Path, cache: bool) -> float:
    settings = task_settings(task, {}, 2).model_copy(
        update={"bf16": "off", "backend": "openvino", "warmup": False, "openvino_cache": cache})
    runtime = get_task(task).runtime_class()(settings, Path("."))
    started = time.perf_counter()
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    elapsed = time.perf_counter() - started
    runtime.unload()
    return round(elapsed, 2)


def main() -> None:
    task = sys.argv[1] if len(sys.argv) > 1 else "vqa"
    if task not in ("vqa", "qa"):
        sys.exit(f"the OpenVINO backend serves vqa and qa, not {task!r}")
    version_dir = REGISTRY / MODEL_OF_TASK[task] / "1"
    if not (version_dir / "manifest.json").is_file():
        sys.exit(f"{version_dir} is missing: run `make bench` once first")
    for entry in (REGISTRY / ".openvino-cache").glob(f"{task}-*"):
        shutil.rmtree(entry)
    set_threads(2)
    timed_load(task, version_dir, cache=False)  # not counted: the weights into the page cache, imports
    report = {"cpu": cpu_kind().kind, "task": task,
              "convert_every_load_s": timed_load(task, version_dir, cache=False),
              "first_load_convert_and_keep_s": timed_load(task, version_dir, cache=True),
              "later_load_read_cache_s": timed_load(task, version_dir, cache=True)}
    sizes = sum(f.stat().st_size for e in (REGISTRY / ".openvino-cache").glob(f"{task}-*") for f in e.iterdir())
    report["cache_mb"] = round(sizes / 2**20)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
