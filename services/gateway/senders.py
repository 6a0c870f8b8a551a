"""Who sent a feedback call, and whether they may send another now.

Identity: ``Authorization: Bearer <key>`` names a key holder (``key:<name>``, role reviewer
or admin; the admin token is the key ``admin``). Without a key the sender is anonymous:
``client:<X-Client-Id>``, or ``addr:<source address>`` when that header is missing. Anyone can
pick a client id, which is why the per-address bucket exists and why quorum alone does
not protect the model (the gate's per-slice check does).

Throttling: token buckets per anonymous sender and per source address, kept in this process
(each gateway replica throttles on its own; docs/threat-model.md). Key holders are not
throttled: they are known and can be revoked.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request

from services.common.errors import LooplineError, Unauthorized
from services.common.keys import KeyStore

MAX_CLIENT_ID = 128
MAX_BUCKETS = 100_000  # oldest buckets are forgotten past this (a forgotten bucket is a full one)


class Throttled(LooplineError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


@dataclass(frozen=True)
class Sender:
    id: str
    role: str  # anonymous | reviewer | admin
    address: str

    @property
    def trusted(self) -> bool:
        return self.role in ("reviewer", "admin")


def identify(request: Request, keys: KeyStore, admin_token: str) -> Sender:
    """The sender of this request; a wrong or revoked key is 401 (never silently anonymous)."""
    address = request.client.host if request.client else "unknown"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given:
        if hmac.compare_digest(given.encode(), admin_token.encode()):
            return Sender("key:admin", "admin", address)
        holder = keys.lookup(given)
        if holder is None:
            raise Unauthorized("unknown or revoked API key (create one with `loopline keys create`)")
        return Sender(holder.sender, holder.role, address)
    client = (request.headers.get("x-client-id") or "").strip()[:MAX_CLIENT_ID]
    return Sender(f"client:{client}" if client else f"addr:{address}", "anonymous", address)


def require_role(request: Request, keys: KeyStore, admin_token: str) -> Sender:
    """Reviewer or admin key, else 401."""
    if not request.headers.get("authorization"):
        raise Unauthorized("this route needs a reviewer or admin key: Authorization: Bearer <key>")
    sender = identify(request, keys, admin_token)
    if not sender.trusted:
        raise Unauthorized("this route needs a reviewer or admin key")
    return sender


class TokenBuckets:
    """``rate_per_min`` tokens a minute, at most ``burst`` saved up, one bucket per key."""

    def __init__(self, rate_per_min: float, burst: int) -> None:
        self.rate = rate_per_min / 60.0
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a token was taken; else seconds until one is free."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait


class FeedbackThrottle:
    def __init__(self, sender_rate: float, sender_burst: int, address_rate: float, address_burst: int) -> None:
        self.by_sender = TokenBuckets(sender_rate, sender_burst)
        self.by_address = TokenBuckets(address_rate, address_burst)

    def check(self, sender: Sender) -> tuple[str, float] | None:
        """None when the call may go on, else (scope, seconds to wait)."""
        if sender.trusted:
            return None
        # the sender's bucket first: a refused call does not spend its address's budget
        wait = self.by_sender.take(sender.id)
        if wait > 0:
            return "sender", wait
        wait = self.by_address.take(sender.address)
        if wait > 0:
            return "address", wait
        return None
