"""Re-run only the bench's QA anchors (harness/bench/anchors.py) on the cached real-size registry
that `make bench` leaves in bench/results/cache/ (run `make bench` once first); prints the cells
as JSON.

    python scripts/bench_anchors.py [QA_VERSION_DIR]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from transformers import AutoTokenizer

from harness.bench import anchors
from harness.bench.efficiency import task_settings
from harness.bench.workloads import qa_workloads
from services.common.torch_shared import set_threads

DEFAULT = "bench/results/cache/registry-base-base-full/qa-extractive/1"


def main() -> None:
    version_dir = Path(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    workloads = qa_workloads(AutoTokenizer.from_pretrained(version_dir), (150, 600))
    set_threads(2)
    started = time.monotonic()
    cells = anchors.qa_anchor_cells(version_dir, task_settings("qa", {}, 2), workloads, 2, seconds=4.0,
                                    agreement_inputs=200)
    print(json.dumps(cells, indent=1))
    print(f"took {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
