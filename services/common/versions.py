"""Keep every aliased version of the served models loaded; swap on alias changes.

The pool serves all registry models of its task (or the one named by the ``model``
setting). A poll notices changes to ``aliases.json`` or new models; new versions load on a
loader thread, are warmed up, then swapped in. Versions no alias names any more are
dropped from the pool; a batch already running on one keeps its reference and finishes.
A version whose files fail verification is refused and the previous one keeps serving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NotFound, Unavailable
from .registry import ALIASES, Registry
from .runtime import ModelRuntime
from .settings import ServingSettings

log = logging.getLogger("loopline.versions")


@dataclass(eq=False)
class LoadedVersion:
    model: str
    task: str
    version: int
    runtime: ModelRuntime
    manifest: dict[str, Any]
    loaded_at: float = field(default_factory=time.time)
    inflight: int = 0  # requests that picked this version and have not been answered

    def describe(self) -> dict[str, Any]:
        return {"name": self.model, "task": self.task, "version": self.version}


@dataclass
class ModelState:
    versions: dict[int, LoadedVersion] = field(default_factory=dict)
    aliases: dict[str, Any] = field(default_factory=dict)


class VersionPool:
    def __init__(self, registry: Registry, runtime_cls: type[ModelRuntime], settings: ServingSettings,
                 data_dir: Path, model_executor: concurrent.futures.Executor) -> None:
        self.registry = registry
        self.runtime_cls = runtime_cls
        self.task = runtime_cls.task
        self.settings = settings
        self.data_dir = data_dir
        self.models: dict[str, ModelState] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._signature: Any = None
        self._loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{self.task}-loader")
        self._sync_lock: asyncio.Lock | None = None
        # adapters mutate a shared base model: load and unload them between batches
        self._model_executor = model_executor
        self._retiring: set[asyncio.Task[None]] = set()

    # -- serving side -----------------------------------------------------------------
    def pick(self, model: str | None, version: int | None) -> LoadedVersion:
        name = model or self.default_model()
        state = self.models.get(name)
        if state is None:
            known = sorted(self.models)
            if name in self.registry.models():
                raise Unavailable(f"model {name} is still loading", code="not_ready", retry_after=2)
            raise NotFound(f"no {self.task} model named {name!r} (served here: {', '.join(known) or 'none'})")
        if version is not None:
            loaded = state.versions.get(int(version))
            if loaded is None:
                raise NotFound(f"version {version} of {name} is not loaded (loaded: {sorted(state.versions) or 'none'}); "
                               "only production and canary versions are served", code="version_not_loaded")
            return loaded
        production = state.aliases.get("production")
        if production is None or production not in state.versions:
            raise Unavailable(f"{name} has no production version loaded yet", code="not_ready", retry_after=2)
        return state.versions[production]

    def default_model(self) -> str:
        if self.settings.model:
            return self.settings.model
        names = sorted(self.models)
        if len(names) == 1:
            return names[0]
        raise NotFound(f"name the {self.task} model to use: one of {', '.join(names) or 'none'}")

    def not_ready(self) -> list[str]:
        wanted = self._wanted_models()
        if not wanted:
            return [f"the registry holds no {self.task} model: run `loopline models bootstrap --tiny`"]
        missing = []
        for name in wanted:
            state = self.models.get(name)
            production = self.registry.resolve(name, "production")
            if production is None:
                missing.append(f"{name}: no production alias")
            elif state is None or state.aliases.get("production") not in state.versions:
                # ready while *a* production version serves (a refused new one keeps the old one serving)
                reason = self._failed.get((name, production))
                # the reason (an exception's text) stays in the log and /v1/versions, never in readiness
                missing.append(f"{name} v{production}: " + ("failed to load" if reason else "loading"))
        return missing

    def snapshot(self) -> dict[str, Any]:
        return {name: {"loaded": sorted(state.versions), "production": state.aliases.get("production"),
                       "canary": state.aliases.get("canary"), "canary_weight": state.aliases.get("canary_weight", 0.0)}
                for name, state in sorted(self.models.items())}

    def failures(self) -> dict[str, str]:
        return {f"{m} v{v}": reason for (m, v), reason in self._failed.items()}

    # -- loading side -----------------------------------------------------------------
    def _wanted_models(self) -> list[str]:
        if self.settings.model:
            return [self.settings.model] if self.settings.model in self.registry.models() else []
        return self.registry.models_for_task(self.task)

    def _registry_signature(self) -> Any:
        sig = []
        root = self.registry.root
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name) if root.is_dir() else []
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            aliases = Path(entry.path) / "aliases.json"
            try:
                st = aliases.stat()
                sig.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                sig.append((entry.name, None))
        return tuple(sig)

    async def watch(self) -> None:
        while True:
            try:
                signature = self._registry_signature()
                if signature != self._signature:
                    self._failed.clear()  # a changed registry deserves a fresh attempt
                    await self.sync()
                    self._signature = signature
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry sync failed; will retry")
            await asyncio.sleep(self.settings.reload_interval_s)

    async def sync(self) -> None:
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            loop = asyncio.get_running_loop()
            for name in self._wanted_models():
                aliases = self.registry.aliases(name)
                targets = {int(aliases[a]) for a in ALIASES if aliases.get(a) is not None}
                state = self.models.get(name) or ModelState()
                fresh: dict[int, LoadedVersion] = {}
                for version in sorted(targets):
                    if version in state.versions:
                        fresh[version] = state.versions[version]
                        continue
                    kind = self._kind(name, version)
                    executor = self._model_executor if kind == "lora-adapter" else self._loader
                    loaded = await loop.run_in_executor(executor, self._load, name, version)
                    if loaded is not None:
                        fresh[version] = loaded
                # keep serving the old production if the new one failed to load
                old_prod = state.aliases.get("production")
                new_prod = aliases.get("production")
                if new_prod is not None and int(new_prod) not in fresh and old_prod in state.versions:
                    fresh[old_prod] = state.versions[old_prod]
                    aliases = {**aliases, "production": old_prod}
                if aliases.get("canary") is not None and int(aliases["canary"]) not in fresh:
                    aliases = {**aliases, "canary": None, "canary_weight": 0.0}
                dropped = [v for v in state.versions if v not in fresh]
                self.models[name] = ModelState(fresh, aliases)  # one assignment: readers see old or new
                for version in dropped:
                    self._retire(state.versions[version])
            for name in [n for n in self.models if n not in self._wanted_models()]:
                for lv in self.models.pop(name).versions.values():
                    self._retire(lv)

    def _retire(self, lv: LoadedVersion) -> None:
        task = asyncio.get_running_loop().create_task(self._unload_when_idle(lv))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _unload_when_idle(self, lv: LoadedVersion) -> None:
        """Requests in flight finish on the version they started on; then it is released."""
        deadline = time.monotonic() + self.settings.request_timeout_s + 5
        while lv.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        log.info("unloading %s v%d (no alias names it)", lv.model, lv.version)
        await asyncio.get_running_loop().run_in_executor(self._model_executor, lv.runtime.unload)

    def _kind(self, name: str, version: int) -> str:
        try:
            return str(self.registry.manifest(name, version).get("kind", "full"))
        except (NotFound, ValueError):
            return "full"

    def _load(self, name: str, version: int) -> LoadedVersion | None:
        if (name, version) in self._failed:
            return None
        problems = self.registry.verify_version(name, version)
        manifest = self.registry.manifest(name, version) if not problems else {}
        if not problems and manifest.get("kind") == "lora-adapter" and manifest.get("base"):
            base = manifest["base"]
            problems = self.registry.verify_version(str(base["model"]), int(base["version"]))
        if problems:
            self._failed[(name, version)] = "; ".join(problems)
            log.error("refusing to load %s v%d: %s", name, version, "; ".join(problems))
            return None
        started = time.perf_counter()
        runtime = self.runtime_cls(self.settings, self.data_dir)
        try:
            runtime.load(self.registry.version_dir(name, version), manifest)
            if self.settings.warmup:
                runtime.warmup()
        except Exception as exc:
            self._failed[(name, version)] = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("failed to load %s v%d", name, version)
            return None
        log.info("loaded %s v%d in %.2fs", name, version, time.perf_counter() - started,
                 extra={"event_action": "model-load"})
        return LoadedVersion(name, self.task, version, runtime, manifest)

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
