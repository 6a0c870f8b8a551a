"""The admin token: ``LOOPLINE_ADMIN_TOKEN`` or, when unset, ``<state>/admin_token``.

The gateway and this service share the generated file; whichever starts first creates it
(``O_EXCL``, mode 0600), the other reads it. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import Request

from services.common.errors import Unauthorized
from services.common.settings import CommonSettings

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
    return token


def _read_token(path: Path) -> str:
    # the creator may be between open and write: the file exists but is still empty
    import time

    for _ in range(50):
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
        time.sleep(0.05)
    raise RuntimeError(f"{path} is empty; delete it or set LOOPLINE_ADMIN_TOKEN")


def token_matches(expected: str, authorization: str | None) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    given = authorization[len("Bearer "):].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


def require_admin(request: Request) -> None:
    """FastAPI dependency: the app keeps the expected token in ``app.state.admin_token``."""
    if not token_matches(request.app.state.admin_token, request.headers.get("authorization")):
        raise Unauthorized()
