"""The admin token: ``LOOPLINE_ADMIN_TOKEN``, or generated once under ``<state>/admin_token``.

The gateway, the fine-tune service and the watchdog share the generated file; whichever
starts first creates it (``O_EXCL``, mode 0600) and shows it once on a terminal (never in
the JSON logs that ship to Elasticsearch); the others read it. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
import time
from pathlib import Path

from fastapi import Request

from .errors import Unauthorized
from .settings import CommonSettings

TOKEN_FILE = "admin_token"


def load_or_create_admin_token(common: CommonSettings) -> str:
    if common.admin_token:
        return common.admin_token
    path = Path(common.state) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    if sys.stderr.isatty():
        print(f"\nLoopline admin token (stored in {path}, mode 0600):\n  {token}\n", file=sys.stderr, flush=True)
    else:
        print(f"Loopline admin token generated and stored in {path} (mode 0600)", file=sys.stderr, flush=True)
    return token


def _read_token(path: Path) -> str:
    # the creator may be between open and write: the file exists but is still empty
    for _ in range(50):
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
        time.sleep(0.05)
    raise RuntimeError(f"{path} is empty; delete it or set LOOPLINE_ADMIN_TOKEN")


def check_bearer(request: Request, token: str) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("admin route: send Authorization: Bearer <LOOPLINE_ADMIN_TOKEN>")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("admin token is wrong")


def require_admin(request: Request) -> None:
    """FastAPI dependency: the app keeps the expected token in ``app.state.admin_token``."""
    check_bearer(request, request.app.state.admin_token)
