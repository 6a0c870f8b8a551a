"""Which model and version a request goes to: explicit header, else canary by weight.

Sticky: the same ``X-Client-Id`` always lands on the same side of the split for a model.
Aliases are read from the shared registry (cheap: cached until aliases.json changes).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import BadRequest
from services.common.registry import Registry


@dataclass(frozen=True)
class Route:
    model: str
    version: int | None  # None: the backend serves its production version
    arm: str  # "explicit" | "canary" | "production"


def bucket(client_id: str, model: str) -> float:
    """A stable number in [0, 1) for a client and model."""
    digest = hashlib.sha256(f"{model}\x00{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Router:
    def __init__(self, registry: Registry, rng: random.Random | None = None) -> None:
        self.registry = registry
        self.rng = rng or random.Random()
        self._cache: dict[str, tuple[Any, dict[str, Any]]] = {}

    def aliases(self, model: str) -> dict[str, Any]:
        path = Path(self.registry.root) / model / "aliases.json"
        try:
            st = path.stat()
            stamp: Any = (st.st_mtime_ns, st.st_size, st.st_ino)
        except (FileNotFoundError, NotADirectoryError):
            stamp = None
        cached = self._cache.get(model)
        if cached and cached[0] == stamp:
            return cached[1]
        data = self.registry.aliases(model) if stamp else {"production": None, "canary": None, "canary_weight": 0.0}
        self._cache[model] = (stamp, data)
        return data

    def route(self, model: str, explicit_version: str | None, client_id: str | None) -> Route:
        if explicit_version not in (None, ""):
            try:
                return Route(model, int(str(explicit_version)), "explicit")
            except ValueError:
                raise BadRequest("X-Model-Version must be a whole number") from None
        aliases = self.aliases(model)
        canary, weight = aliases.get("canary"), float(aliases.get("canary_weight") or 0.0)
        if canary is not None and weight > 0:
            draw = bucket(client_id, model) if client_id else self.rng.random()
            if draw < weight:
                return Route(model, int(canary), "canary")
        return Route(model, None, "production")
