"""Put models into the registry: tiny offline builds, or real checkpoints from a hub."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.common.registry import Registry, VersionRef

log = logging.getLogger("loopline.bootstrap")

TINY_STYLES = ("mosaic", "sketch")
WORLD_SEED = 0
Progress = Callable[[str, int, int, dict[str, Any]], None]
# the builder trains on the world and returns its held-out scores; they go into the manifest
TinyBuilder = Callable[[Path, int, Progress | None], dict[str, Any]]


def tiny_builders() -> dict[str, tuple[str, str, TinyBuilder]]:
    """model name -> (task, framework, builder(out_dir, seed, progress) -> metrics)."""
    from services.qa.build import build_tiny as build_qa
    from services.style.network import build_tiny as build_style
    from services.vqa.build import build_tiny as build_vqa

    builders: dict[str, tuple[str, str, TinyBuilder]] = {
        "vqa-blip": ("vqa", "torch", lambda d, seed, p: build_vqa(d, seed=seed, progress=p)),
        "qa-extractive": ("qa", "torch", lambda d, seed, p: build_qa(d, seed=seed, progress=p)),
    }
    for style in TINY_STYLES:
        builders[f"style-{style}"] = ("style", "tensorflow",
                                      lambda d, seed, p, s=style: build_style(d, s, seed=seed, progress=p))
    return builders


def bootstrap_tiny(registry: Registry, if_empty: bool = False, seed: int = WORLD_SEED,
                   show_progress: bool = True) -> list[VersionRef]:
    """Train every tiny model on its synthetic world (docs/world.md) and register it as a new
    version with alias production; held-out scores go into the manifest's metrics.

    With ``if_empty`` only models the registry does not hold yet are built.
    """

    made = []
    for name, (task, framework, build) in tiny_builders().items():
        if if_empty and registry.versions(name):
            continue
        with _progress_for(name, show_progress) as progress:
            metrics: dict[str, Any] = {}
            ref = registry.create_version(
                name, task=task, framework=framework, kind="full",
                write=lambda d, b=build, p=progress: metrics.update(b(d, seed, p)),
                lineage={"job": "bootstrap-tiny"},
                extra={"source": "tiny-offline", "world": {"name": WORLDS[task], "seed": seed, "doc": "docs/world.md"}})
        registry.update_metrics(name, ref.version, metrics)
        registry.promote(name, ref.version, "production", actor="bootstrap", reason="tiny offline build")
        log.info("registered %s v%d: %s", name, ref.version, _headline(metrics))
        if show_progress:
            _console().print(f"[bold]{name}[/bold] v{ref.version}: {_headline(metrics)}")
        made.append(ref)
    return made


WORLDS = {"vqa": "shapes", "qa": "facts", "style": "styles"}


def _headline(metrics: dict[str, Any]) -> str:
    held = metrics.get("heldout", {})
    if "accuracy" in held:
        return (f"held-out accuracy {held['accuracy']:.1%} on {held['count']} items, "
                f"median confidence {held['median_confidence']:.2f} ({metrics.get('train_seconds')} s)")
    if "exact_match" in held:
        return (f"held-out exact match {held['exact_match']:.1%}, F1 {held['f1']:.1%} on {held['count']} items, "
                f"median confidence {held['median_confidence']:.2f} ({metrics.get('train_seconds')} s)")
    before = metrics.get("untrained", {})
    return (f"held-out content loss {held.get('content_loss')} (untrained {before.get('content_loss')}), "
            f"style loss {held.get('style_loss')} (untrained {before.get('style_loss')}) "
            f"({metrics.get('train_seconds')} s)")


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _progress_for(name: str, show: bool) -> Iterator[Progress | None]:
    if not show:
        yield None
        return
    from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    with Bar(TextColumn(f"{name:<16}"), TextColumn("{task.description:<6}"), BarColumn(),
             TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
             console=_console(), transient=False) as bar:
        task = bar.add_task("data", total=None, info="")

        def report(phase: str, step: int, total: int, info: dict[str, Any]) -> None:
            bar.update(task, description=phase, completed=step, total=total,
                       info=" ".join(f"{k} {v}" for k, v in info.items()))

        yield report


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
