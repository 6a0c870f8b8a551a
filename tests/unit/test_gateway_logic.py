from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.common.errors import BadRequest
from services.common.registry import Registry
from services.gateway.api import parse_window
from services.gateway.breaker import CircuitBreaker
from services.gateway.routing import Router, bucket

pytestmark = pytest.mark.unit


def _registry(tmp_path: Path, weight: float) -> Registry:
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.create_version("m", task="qa", framework="torch", write=lambda d: (d / "w").write_text("x"))
    reg.promote("m", 1)
    reg.promote("m", 2, "canary", weight=weight)
    return reg


def test_canary_split_within_tolerance(tmp_path: Path) -> None:
    router = Router(_registry(tmp_path, 0.2), rng=random.Random(42))
    arms = [router.route("m", None, None).arm for _ in range(10_000)]
    share = arms.count("canary") / len(arms)
    assert 0.18 <= share <= 0.22


def test_canary_split_by_client_ids_and_stickiness(tmp_path: Path) -> None:
    router = Router(_registry(tmp_path, 0.3))
    routes = {f"client-{i}": router.route("m", None, f"client-{i}") for i in range(5000)}
    share = sum(r.arm == "canary" for r in routes.values()) / len(routes)
    assert 0.27 <= share <= 0.33
    for client, first in list(routes.items())[:200]:
        assert all(router.route("m", None, client) == first for _ in range(5))
    assert all(0 <= bucket(f"c{i}", "m") < 1 for i in range(100))


def test_explicit_version_wins_and_alias_changes_are_seen(tmp_path: Path) -> None:
    reg = _registry(tmp_path, 1.0)
    router = Router(reg)
    assert router.route("m", "1", "x").version == 1 and router.route("m", "1", "x").arm == "explicit"
    assert router.route("m", None, "x").arm == "canary"
    reg.clear_canary("m")
    assert router.route("m", None, "x").arm == "production"
    with pytest.raises(BadRequest):
        router.route("m", "two", None)


def test_breaker_opens_fails_fast_probes_and_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(failures_to_open=3, reset_s=2.0, clock=lambda: now[0])
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow() and b.retry_after() > 0
    now[0] = 2.5
    assert b.state == "half-open" and b.allow() and not b.allow(), "exactly one probe"
    b.failure()
    assert b.state == "open"
    now[0] = 5.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


@pytest.mark.parametrize("text,seconds", [("900", 900), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_window_parsing(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0", "1y", "-5m", "1000d"])
def test_bad_windows(text: str) -> None:
    from services.common.errors import Invalid
    with pytest.raises(Invalid):
        parse_window(text)
