"""Benchmark registries: real-size (or tiny) random-weight models, built once and cached.

Latency does not depend on weight values, so random weights with the real architecture
(BLIP-VQA-base, DistilBERT-base QA, full-width TransformerNet) time like the checkpoints.
A registry is rebuilt only when its recipe changes (a stamp file holds the recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.common.registry import Registry

BENCH_STYLE = "mosaic"


@dataclass(frozen=True)
class ModelSizes:
    # base = the seeds' Salesforce/blip-vqa-capfilt-large (and blip-vqa-base): ViT-B/16 at 384 px,
    # BERT-base text; despite its name there is no ViT-L BLIP VQA checkpoint to time
    vqa: str = "base"      # tiny | base
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

