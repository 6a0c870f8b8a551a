from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.requests import Request

from services.common.auth import check_bearer, load_or_create_admin_token
from services.common.errors import Unauthorized
from services.common.settings import CommonSettings

pytestmark = pytest.mark.unit


def _request(authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    return Request({"type": "http", "headers": headers})


def test_token_generated_once_with_mode_0600_and_shared(tmp_path: Path) -> None:
    common = CommonSettings(data_dir=tmp_path)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(load_or_create_admin_token(common))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 32, "racing services agree on one token"
    assert oct((tmp_path / "state" / "admin_token").stat().st_mode & 0o777) == "0o600"


def test_configured_token_wins_and_weak_ones_are_refused(tmp_path: Path) -> None:
    assert load_or_create_admin_token(CommonSettings(data_dir=tmp_path, admin_token="y" * 20)) == "y" * 20
    for weak in ("changeme", "short", ""):
        with pytest.raises(ValueError):
            CommonSettings(data_dir=tmp_path, admin_token=weak)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer wrong-token-value", "bearer  "])
def test_check_bearer_refuses(header: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        check_bearer(_request(header), "right-token-value-123")
    assert info.value.status == 401 and info.value.headers["WWW-Authenticate"] == "Bearer"


def test_check_bearer_accepts_the_token() -> None:
    check_bearer(_request("Bearer right-token-value-123"), "right-token-value-123")
    check_bearer(_request("bearer right-token-value-123"), "right-token-value-123")
