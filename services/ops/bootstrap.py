"""Put models into the registry: tiny offline builds, or real checkpoints from a hub."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common.registry import Registry, VersionRef

log = logging.getLogger("loopline.bootstrap")

TINY_STYLES = ("mosaic", "sketch")
# model name -> (task, framework, builder(out_dir) )


def tiny_builders() -> dict[str, tuple[str, str, Callable[[Path], None]]]:
    from services.qa.build import build_qa
    from services.style.network import build_style
    from services.vqa.build import build_blip

    builders: dict[str, tuple[str, str, Callable[[Path], None]]] = {
        "vqa-blip": ("vqa", "torch", lambda d: build_blip(d, "tiny", seed=0)),
        "qa-extractive": ("qa", "torch", lambda d: build_qa(d, "tiny", seed=0)),
    }
    for i, style in enumerate(TINY_STYLES):
        builders[f"style-{style}"] = ("style", "tensorflow",
                                      lambda d, s=style, seed=i: build_style(d, s, "tiny", seed=seed))
    return builders


def bootstrap_tiny(registry: Registry, if_empty: bool = False) -> list[VersionRef]:
    """Build every tiny model and register it as a new version with alias production.

    With ``if_empty`` only models the registry does not hold yet are built.
    """
    made = []
    for name, (task, framework, build) in tiny_builders().items():
        if if_empty and registry.versions(name):
            continue
        ref = registry.create_version(name, task=task, framework=framework, kind="full", write=build,
                                      lineage={"job": "bootstrap-tiny"}, extra={"source": "tiny-offline"})
        registry.promote(name, ref.version, "production", actor="bootstrap", reason="tiny offline build")
        log.info("registered %s v%d", name, ref.version)
        made.append(ref)
    return made


HUB_MODELS = {
    "vqa-blip": ("vqa", "Salesforce/blip-vqa-base"),
    "qa-extractive": ("qa", "distilbert-base-cased-distilled-squad"),
}


class HubUnreachable(RuntimeError):
    pass


def check_hub_reachable(endpoint: str = "https://huggingface.co", timeout_s: float = 5.0) -> None:
    """Fail in seconds with one sentence instead of the hub client's minute of retries."""
    import httpx

    try:
        httpx.head(endpoint, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise HubUnreachable(f"the Hugging Face hub ({endpoint}) cannot be reached from this machine "
                             f"({type(exc).__name__}); run `loopline models pull` where it can, or use "
                             "`loopline models bootstrap --tiny` offline") from exc


def pull(registry: Registry, model: str, hub_id: str | None = None, promote: bool = False) -> VersionRef:
    """Fetch a real checkpoint from the Hugging Face hub and register it as a new version."""
    if model not in HUB_MODELS:
        raise ValueError(f"no hub checkpoint is known for {model!r}; known: {', '.join(HUB_MODELS)}")
    task, default_id = HUB_MODELS[model]
    hub_id = hub_id or default_id
    check_hub_reachable()

    def write(out: Path) -> None:
        try:
            if task == "vqa":
                from transformers import BlipForQuestionAnswering, BlipProcessor
                BlipForQuestionAnswering.from_pretrained(hub_id).save_pretrained(out)
                BlipProcessor.from_pretrained(hub_id).save_pretrained(out)
            else:
                from transformers import AutoModelForQuestionAnswering, AutoTokenizer
                AutoModelForQuestionAnswering.from_pretrained(hub_id).save_pretrained(out)
                AutoTokenizer.from_pretrained(hub_id).save_pretrained(out)
        except (OSError, ValueError) as exc:  # the hub client raises OSError subclasses when offline
            raise HubUnreachable(f"could not fetch {hub_id} from the Hugging Face hub ({type(exc).__name__}); "
                                 "run `loopline models pull` on a machine that can reach huggingface.co") from exc

    ref = registry.create_version(model, task=task, framework="torch", write=write,
                                  lineage={"job": "pull"}, extra={"source": f"hf://{hub_id}"})
    if promote:
        registry.promote(model, ref.version, "production", actor="pull", reason=f"pulled {hub_id}")
    return ref


def describe_ref(ref: VersionRef) -> dict[str, Any]:
    return {"model": ref.model, "version": ref.version, "path": str(ref.path)}
