"""Put models into the registry: tiny offline builds, or real checkpoints from a hub."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.common.registry import Registry, VersionRef
from services.common.settings import default_threads
from services.common.tasks import TASKS, Task, load_object

log = logging.getLogger("loopline.bootstrap")

# each task's tiny builder trains on its synthetic world (``Task.world``, docs/world.md) and returns
# its held-out scores, which go into the manifest's metrics
Progress = Callable[[str, int, int, dict[str, Any]], None]


def tiny_models() -> dict[str, Task]:
    """Every tiny offline model of every task in the task table, by registry name."""
    return {name: task for task in TASKS.values() for name in task.tiny_models}


def bootstrap_tiny(registry: Registry, if_empty: bool = False, show_progress: bool = True,
                   only: tuple[str, ...] = (), jobs: int | None = None) -> list[VersionRef]:
    """Train every tiny model on its world and register it as a new version with alias
    production; held-out scores go into the manifest's metrics.

    With ``if_empty`` only models the registry does not hold yet are built; with ``only``, only
    the models named. ``jobs`` models train at once, each in a process of its own (default: the
    cores the process may use, a container's CPU limit included; 1 trains them one after the
    other in this process). A builder's result does not depend on it: each builder fixes its own
    thread count (one: torch's, and TensorFlow's for the styles), so a model is the same file either way.
    Training uses ``LOOPLINE_FINETUNE_NUM_THREADS`` threads where a builder does not fix them.
    Models are registered in the table's order; when one fails, the ones before it stay registered.
    """
    unknown = sorted(set(only) - set(tiny_models()))
    if unknown:
        raise ValueError(f"no tiny model named {', '.join(unknown)}; the tiny models are {', '.join(tiny_models())}")
    todo = [name for name in tiny_models()
            if not (if_empty and registry.versions(name)) and not (only and name not in only)]
    jobs = min(len(todo), jobs if jobs is not None else default_threads())
    if jobs < 1 and todo:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    if jobs <= 1:
        _training_threads()
        return [_register(registry, name, _build_here(name, show_progress), show_progress) for name in todo]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker, never a fork of a process whose torch threads run
    with tempfile.TemporaryDirectory(prefix="loopline-bootstrap-") as tmp, \
            ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(_build_into, name, str(Path(tmp) / name), show_progress) for name in todo}
        try:
            return [_register(registry, name, _copy_built(future.result()), show_progress)
                    for name, future in futures.items()]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # models not started yet are not built
            raise


# how a model reaches the registry: a function that fills the new version's folder and returns
# the model's held-out scores
Writer = Callable[[Path], dict[str, Any]]


def _build_here(name: str, show_progress: bool) -> Writer:
    """Build ``name`` in this process, straight into the version being created."""
    def write(out: Path) -> dict[str, Any]:
        with _progress_for(name, show_progress) as progress:
            return dict(tiny_models()[name].build_tiny(name, out, progress=progress) or {})

    return write


def _build_into(name: str, out: str, show_progress: bool) -> tuple[str, dict[str, Any]]:
    """A worker: build ``name`` into ``out``; returns the folder and the held-out scores."""
    logging.basicConfig(level=logging.WARNING)
    _training_threads()
    progress = _line_progress(name, _console()) if show_progress else None  # lines from each worker, no bars
    Path(out).mkdir(parents=True)
    return out, dict(tiny_models()[name].build_tiny(name, Path(out), progress=progress) or {})


def _copy_built(built: tuple[str, dict[str, Any]]) -> Writer:
    """What a worker built: its folder is copied into the version being created."""
    folder, scores = built

    def write(out: Path) -> dict[str, Any]:
        shutil.copytree(folder, out, dirs_exist_ok=True)
        return scores

    return write


def _register(registry: Registry, name: str, write: Writer, show_progress: bool) -> VersionRef:
    task = tiny_models()[name]
    seed = task.tiny_models[name].get("seed", 0)
    metrics: dict[str, Any] = {}
    ref = registry.create_version(
        name, task=task.name, framework=task.framework, kind="full", write=lambda out: metrics.update(write(out)),
        lineage={"job": "bootstrap-tiny"},
        extra={"source": "tiny-offline",
               **({"world": {"name": task.world, "seed": seed, "doc": "docs/world.md"}} if task.world else {})})
    registry.update_metrics(name, ref.version, metrics)
    registry.promote(name, ref.version, "production", actor="bootstrap", reason="tiny offline build")
    log.info("registered %s v%d: %s", name, ref.version, headline(metrics))
    if show_progress:
        _console().print(f"[bold]{name}[/bold] v{ref.version}: {headline(metrics)}")
        for line in generalisation_lines(metrics):
            _console().print(line, highlight=False, soft_wrap=True)
    return ref


def _training_threads() -> None:
    import importlib.util

    from services.common.training import TrainingSettings

    if importlib.util.find_spec("torch") is not None:
        from services.common.torch_shared import set_threads

        set_threads(TrainingSettings().num_threads)


def headline(metrics: dict[str, Any]) -> str:
    held = metrics.get("heldout", {})
    if "accuracy" in held:
        return (f"held-out accuracy {held['accuracy']:.1%} on {held['count']} items, "
                f"median confidence {held['median_confidence']:.2f} ({metrics.get('train_seconds')} s)")
    if "exact_match" in held:
        return (f"held-out exact match {held['exact_match']:.1%}, F1 {held['f1']:.1%} on {held['count']} items, "
                f"median confidence {held['median_confidence']:.2f} ({metrics.get('train_seconds')} s)")
    if "content_loss" not in held:  # a family whose builder reports other scores
        scores = ", ".join(f"{k} {v}" for k, v in held.items() if isinstance(v, (int, float)))
        return f"held-out {scores or 'scores not reported'} ({metrics.get('train_seconds')} s)"
    before = metrics.get("untrained", {})
    return (f"held-out content loss {held.get('content_loss')} (untrained {before.get('content_loss')}), "
            f"style loss {held.get('style_loss')} (untrained {before.get('style_loss')}) "
            f"({metrics.get('train_seconds')} s)")


def generalisation_lines(metrics: dict[str, Any]) -> list[str]:
    """The held-out set that tests generalisation, questions without an answer, and the
    calibration table (confidence bins against accuracy), for models that measured them."""
    lines = []
    if "unseen" in metrics:
        unseen = metrics["unseen"]
        lines.append(f"  unseen names and sentence forms: exact match {unseen['exact_match']:.1%} on "
                     f"{unseen['count']} items (in-generator {metrics['heldout']['exact_match']:.1%})")
    if "second_renderer" in metrics:
        other = metrics["second_renderer"]
        lines.append(f"  second renderer: accuracy {other['accuracy']:.1%} on {other['count']} items "
                     f"(in-generator {metrics['heldout']['accuracy']:.1%}), by kind {other.get('by_kind')}")
    for label, off in (("no answer in the context", metrics.get("off_world")),
                       ("no shape in the image", metrics.get("no_shape"))):
        if off:
            below = next((v for k, v in off.items() if k.startswith("share_below")), None)
            lines.append(f"  {label}: mean confidence {off['mean_confidence']:.2f}, "
                         f"{below:.0%} below the watchdog's threshold ({off['count']} items)")
    if metrics.get("calibration"):
        lines.append("  calibration   confidence   answers   right")
        lines += [f"                {row['confidence']}   {row['count']:>7}   "
                  + (f"{row['accuracy']:.1%}" if row["accuracy"] is not None else "-")
                  for row in metrics["calibration"]]
    return lines


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _progress_for(name: str, show: bool) -> Iterator[Progress | None]:
    if not show:
        yield None
        return
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    console = _console()
    if not console.is_terminal:  # container logs, CI: a line per phase and per tenth, no bar
        yield _line_progress(name, console)
        return
    with Bar(TextColumn(f"{name:<16}"), TextColumn("{task.description:<6}"), BarColumn(),
             TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
             console=console) as bar:
        task = bar.add_task("data", total=None, info="")

        def report(phase: str, step: int, total: int, info: dict[str, Any]) -> None:
            bar.update(task, description=phase, completed=step, total=total,
                       info=" ".join(f"{k} {v}" for k, v in info.items()))

        yield report


def _line_progress(name: str, console: Any) -> Progress:
    started = time.monotonic()
    last: dict[str, Any] = {"phase": None, "tenth": -1}

    def report(phase: str, step: int, total: int, info: dict[str, Any]) -> None:
        tenth = step * 10 // total if total else 0
        if phase == last["phase"] and tenth == last["tenth"]:
            return
        last.update(phase=phase, tenth=tenth)
        details = " ".join(f"{k} {v}" for k, v in info.items())
        console.print(f"{name}: {phase} {step}/{total} {details} ({time.monotonic() - started:.0f} s)",
                      highlight=False, soft_wrap=True)

    return report


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


def resolve_pull(model: str, hub_id: str | None = None) -> tuple[str, Task, str]:
    """(registry model, task, hub id) for ``loopline models pull MODEL``, where MODEL is a registry
    model (``vqa-blip``) or a known hub checkpoint id (``Salesforce/blip-vqa-capfilt-large``)."""
    known = hub_models()
    if model in known:
        task = known[model]
        return model, task, hub_id or str(task.hub_id)
    for name, task in known.items():
        if model in (task.hub_id, *task.hub_aliases):
            if hub_id is not None and hub_id != model:
                raise ValueError(f"{model!r} is already a hub id; drop --hub-id {hub_id!r}")
            return name, task, model
    hub_ids = [h for t in known.values() for h in (t.hub_id, *t.hub_aliases) if h]
    raise ValueError(f"no hub checkpoint is known for {model!r}; known models: {', '.join(known)}; "
                     f"known hub ids: {', '.join(hub_ids)} (any other id of the same architecture: "
                     "--hub-id with a model name)")


def pull(registry: Registry, model: str, hub_id: str | None = None, promote: bool = False) -> VersionRef:
    """Fetch a real checkpoint from the Hugging Face hub and register it as a new version."""
    model, task, hub_id = resolve_pull(model, hub_id)
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

