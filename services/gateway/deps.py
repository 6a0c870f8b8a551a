"""What every gateway route needs from the request: the app's core, and the admin check."""

from __future__ import annotations

from fastapi import Request

from services.common.auth import check_bearer

from .core import GatewayCore


def core_of(request: Request) -> GatewayCore:
    return request.app.state.core


def admin(request: Request) -> GatewayCore:
    """The core, after the bearer token was checked (401 otherwise)."""
    core = core_of(request)
    check_bearer(request, request.app.state.admin_token)
    return core
