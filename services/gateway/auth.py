"""The admin token: from settings, or generated once under ``state/admin_token`` (0600)."""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from pathlib import Path

from fastapi import Request

from services.common.errors import Unauthorized

TOKEN_FILE = "admin_token"


def load_or_create_token(configured: str | None, state_dir: Path) -> str:
    if configured:
        return configured
    path = Path(state_dir) / TOKEN_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    # shown once, on the terminal only: never in the JSON logs that ship to Elasticsearch
    if sys.stderr.isatty():
        print(f"\nLoopline admin token (stored in {path}, mode 0600):\n  {token}\n", file=sys.stderr, flush=True)
    else:
        print(f"Loopline admin token generated and stored in {path} (mode 0600)", file=sys.stderr, flush=True)
    return token


def check_bearer(request: Request, token: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("admin route: send Authorization: Bearer <LOOPLINE_ADMIN_TOKEN>")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("admin token is wrong")
