"""Named API keys (``loopline keys create/revoke/list``): who is sending, with what role.

Keys live in ``<state>/api_keys.json`` as SHA-256 digests only; the key itself is shown once,
when it is created. A key is ``ll_`` + 32 random bytes (URL-safe), so a plain digest is enough
(no password stretching is needed for a secret nobody chose). Roles:

* ``reviewer``: corrections sent with the key are accepted at once; may accept or reject
  other senders' corrections (``/v1/feedback/review``);
* ``admin``: everything a reviewer may, plus the admin routes (the admin token is an admin key
  named ``admin``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import write_json_atomic

KEYS_FILE = "api_keys.json"
ROLES = ("reviewer", "admin")
_LOCK = threading.Lock()


@dataclass(frozen=True)
class KeyHolder:
    name: str
    role: str

    @property
    def sender(self) -> str:
        return f"key:{self.name}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys file, re-read when it changes (the CLI writes it while the gateway runs)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / KEYS_FILE
        self._stamp: tuple[float, int] | None = None
        self._by_digest: dict[str, dict[str, Any]] = {}

    def _read(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.path.read_text(encoding="utf-8")).get("keys", []))
        except FileNotFoundError:
            return []

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._by_digest = {k["sha256"]: k for k in self._read() if not k.get("revoked_at")}
            self._stamp = stamp

    def lookup(self, key: str) -> KeyHolder | None:
        """The holder of a live key, or None (unknown or revoked)."""
        self._refresh()
        wanted = digest(key)
        for known, rec in self._by_digest.items():
            if hmac.compare_digest(known, wanted):
                return KeyHolder(rec["name"], rec["role"])
        return None

    def list(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in rec.items() if k != "sha256"} for rec in self._read()]

    def create(self, name: str, role: str) -> str:
        """A new key (returned once; only its digest is stored)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name == "admin":
            raise ValueError("a key name is letters, digits, - _ . (and not 'admin', the admin token's name)")
        with _LOCK:
            keys = self._read()
            if any(k["name"] == name and not k.get("revoked_at") for k in keys):
                raise ValueError(f"a live key named {name!r} exists: revoke it first")
            key = "ll_" + secrets.token_urlsafe(32)
            keys.append({"name": name, "role": role, "sha256": digest(key), "prefix": key[:7],
                         "created_at": time.time(), "revoked_at": None})
            self._write(keys)
        return key

    def revoke(self, name: str) -> bool:
        with _LOCK:
            keys = self._read()
            live = [k for k in keys if k["name"] == name and not k.get("revoked_at")]
            for k in live:
                k["revoked_at"] = time.time()
            if live:
                self._write(keys)
        return bool(live)

    def _write(self, keys: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"keys": keys})
        os.chmod(self.path, 0o600)
