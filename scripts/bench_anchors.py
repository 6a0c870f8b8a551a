"""Re-run only the bench's anchors (harness/bench/anchors.py) for one task on the cached real-size
registry that `make bench` leaves in bench/results/cache/ (run `make bench` once first); prints
the cells as JSON.

    python scripts/bench_anchors.py [vqa|qa|style] [VERSION_DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness.bench import anchors
from harness.bench.efficiency import task_settings
from harness.bench.models import MODEL_OF_TASK
from harness.bench.workloads import qa_workloads, style_workload, vqa_workload
from services.common.torch_shared import set_threads

REGISTRY = Path("bench/results/cache/registry-base-base-full")


def main() -> None:
    task = sys.argv[1] if len(sys.argv) > 1 else "qa"
    if task not in ("vqa", "qa", "style"):
        sys.exit(f"anchors exist for vqa, qa and style, not {task!r}")
    version_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else REGISTRY / MODEL_OF_TASK[task] / "1"
    if not (version_dir / "manifest.json").is_file():
        sys.exit(f"{version_dir} is not a model version: run `make bench` once, or name a version directory")
    if task == "qa":
        from transformers import AutoTokenizer

        workloads, make = qa_workloads(AutoTokenizer.from_pretrained(version_dir), (150, 600)), anchors.qa_anchor_cells
    elif task == "vqa":
        workloads, make = [vqa_workload()], anchors.vqa_anchor_cells
    else:
        workloads, make = [style_workload()], anchors.style_anchor_cells
    set_threads(2)
    started = time.monotonic()
    cells = make(version_dir, task_settings(task, {}, 2), workloads, 2, seconds=4.0, agreement_inputs=200)
    print(json.dumps(cells, indent=1))
    print(f"took {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
