"""A circuit breaker per backend: fail fast while it is down, probe, close when it is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failures_to_open: int = 3
    reset_s: float = 2.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._now() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        """May a request go to the backend now? In half-open, exactly one probe goes."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_after(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.5, self.reset_s - (self._now() - self.opened_at))

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at = self._now()
        self.probing = False

    def _now(self) -> float:
        return self.clock()
