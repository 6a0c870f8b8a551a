"""Benchmark registries: real-size (or tiny) random-weight models, built once and cached.

Latency does not depend on weight values, so random weights with the real architecture
(BLIP-VQA-base, DistilBERT-base QA, full-width TransformerNet) time like the checkpoints.
A registry is rebuilt only when its recipe changes (a stamp file holds the recipe).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from services.common.registry import Registry

BENCH_STYLE = "mosaic"


@dataclass(frozen=True)
class ModelSizes:
    vqa: str = "base"      # tiny | base | large
    qa: str = "base"       # tiny | base
    style: str = "full"    # tiny | full

    @classmethod
    def tiny(cls) -> ModelSizes:
        return cls(vqa="tiny", qa="tiny", style="tiny")


MODEL_OF_TASK = {"vqa": "vqa-blip", "qa": "qa-extractive", "style": f"style-{BENCH_STYLE}"}


def ensure_registry(root: Path, sizes: ModelSizes, tasks: tuple[str, ...] = ("vqa", "qa", "style")) -> Registry:
    """A registry under ``root`` with a production version of each task's model at ``sizes``.

    Models already present are kept (the directory name carries the sizes), so runs after
    the first one start in seconds.
    """
    from services.qa.build import build_qa
    from services.style.network import build_style
    from services.vqa.build import build_blip

    Path(root).mkdir(parents=True, exist_ok=True)
    registry = Registry(Path(root))
    builders = {
        "vqa": ("torch", lambda d: build_blip(d, sizes.vqa, seed=0)),
        "qa": ("torch", lambda d: build_qa(d, sizes.qa, seed=0)),
        "style": ("tensorflow", lambda d: build_style(d, BENCH_STYLE, sizes.style, seed=0)),
    }
    for task in tasks:
        name = MODEL_OF_TASK[task]
        if registry.versions(name) and registry.resolve(name, "production") is not None:
            continue
        framework, build = builders[task]
        ref = registry.create_version(name, task=task, framework=framework, write=build,
                                      lineage={"job": "bench"}, extra={"source": f"bench-random-{getattr(sizes, task)}"})
        registry.promote(name, ref.version, "production", actor="bench", reason="benchmark build")
    return registry


def blip_dir(root: Path, size: str) -> Path:
    """A standalone BLIP directory (no registry) for the single-request BLIP-large figure."""
    from services.vqa.build import build_blip

    out = Path(root) / f"blip-{size}"
    if not (out / "config.json").exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build_blip(tmp, size, seed=0)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out
