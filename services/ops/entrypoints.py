"""One source of truth for what each service runs: its ASGI app factory.

Used by ``loopline serve``, ``loopline up``, the Dockerfiles and the Kubernetes manifests
(all of them run ``loopline serve <service>``).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from services.common.tasks import TASKS

ENTRYPOINTS: dict[str, str] = {
    "gateway": "services.gateway.app:create_app",
    # each inference service is its runtime module's create_app (the task table names the runtime)
    **{name: task.runtime.split(":")[0] + ":create_app" for name, task in TASKS.items()},
    "finetune": "services.finetune.app:create_app",
    "watchdog": "services.watchdog.app:create_app",
}


def importable(service: str) -> bool:
    module = ENTRYPOINTS[service].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def load_factory(service: str) -> Any:
    if service not in ENTRYPOINTS:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(ENTRYPOINTS)}")
    module, attr = ENTRYPOINTS[service].split(":")
    return getattr(importlib.import_module(module), attr)
