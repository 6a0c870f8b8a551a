"""What every gateway route needs from the request: the app's core, and the admin check."""

from __future__ import annotations

from fastapi import Request

from services.common.auth import check_bearer

from .core import GatewayCore
from .senders import Sender, identify, require_role


def core_of(request: Request) -> GatewayCore:
    return request.app.state.core


def admin(request: Request) -> GatewayCore:
    """The core, after the bearer token was checked (401 otherwise)."""
    core = core_of(request)
    check_bearer(request, request.app.state.admin_token)
    return core


def feedback_sender(request: Request) -> tuple[GatewayCore, Sender]:
    """The core and who is sending this feedback, after the throttle let it through (429 otherwise)."""
    core = core_of(request)
    sender = identify(request, core.keys, request.app.state.admin_token)
    core.admit_feedback(sender)
    return core, sender


def reviewer(request: Request) -> tuple[GatewayCore, Sender]:
    """The core and the reviewer or admin key holder calling (401 otherwise)."""
    core = core_of(request)
    return core, require_role(request, core.keys, request.app.state.admin_token)
