"""Put models into the registry: tiny offline builds, or real checkpoints from a hub."""

from __future__ import annotations

import logging
from pathlib import Path

from services.common.registry import Registry, VersionRef
from services.common.tasks import TASKS, Task, load_object

log = logging.getLogger("loopline.bootstrap")


def tiny_models() -> dict[str, Task]:
    """Every tiny offline model of every task in the task table, by registry name."""
    return {name: task for task in TASKS.values() for name in task.tiny_models}


def bootstrap_tiny(registry: Registry, if_empty: bool = False) -> list[VersionRef]:
    """Build every tiny model and register it as a new version with alias production.

    With ``if_empty`` only models the registry does not hold yet are built.
    """
    made = []
    for name, task in tiny_models().items():
        if if_empty and registry.versions(name):
            continue
        ref = registry.create_version(name, task=task.name, framework=task.framework, kind="full",
                                      write=lambda out, n=name, t=task: t.build_tiny(n, out),
                                      lineage={"job": "bootstrap-tiny"}, extra={"source": "tiny-offline"})
        registry.promote(name, ref.version, "production", actor="bootstrap", reason="tiny offline build")
        log.info("registered %s v%d", name, ref.version)
        made.append(ref)
    return made


def hub_models() -> dict[str, Task]:
    """Models with a known real checkpoint (the task's default model and hub id)."""
    return {str(t.default_model): t for t in TASKS.values() if t.hub_id and t.hub_loader and t.default_model}


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
    known = hub_models()
    if model not in known:
        raise ValueError(f"no hub checkpoint is known for {model!r}; known: {', '.join(known)}")
    task = known[model]
    hub_id = hub_id or str(task.hub_id)
    check_hub_reachable()
    save = load_object(str(task.hub_loader))

    def write(out: Path) -> None:
        try:
            save(hub_id, out)
        except (OSError, ValueError) as exc:  # the hub client raises OSError subclasses when offline
            raise HubUnreachable(f"could not fetch {hub_id} from the Hugging Face hub ({type(exc).__name__}); "
                                 "run `loopline models pull` on a machine that can reach huggingface.co") from exc

    ref = registry.create_version(model, task=task.name, framework=task.framework, write=write,
                                  lineage={"job": "pull"}, extra={"source": f"hf://{hub_id}"})
    if promote:
        registry.promote(model, ref.version, "production", actor="pull", reason=f"pulled {hub_id}")
    return ref

