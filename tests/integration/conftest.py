from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.fixtures import data_dir


@pytest.fixture(scope="module")
def module_data(tmp_path_factory: pytest.TempPathFactory, tiny_registry_template: Path) -> Iterator[Path]:
    yield data_dir(tmp_path_factory.mktemp("data"), tiny_registry_template, SAMPLES)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


class Stack:
    def __init__(self, data: Path, logs: Path) -> None:
        from tests.servers import start_service

        self.data, self.logs = data, logs
        self.backends = {name: start_service(name, data, logs) for name in ("vqa", "qa", "style")}
        for svc in self.backends.values():
            svc.wait_ready()
        self.gateway_env = {f"LOOPLINE_{n.upper()}_URL": s.url for n, s in self.backends.items()}
        self.gateway_env.update(LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN, LOOPLINE_GATEWAY_BREAKER_RESET_S="1.0")
        self.gateway = start_service("gateway", data, logs, **self.gateway_env).wait_ready()

    @property
    def url(self) -> str:
        return self.gateway.url

    def restart_gateway(self) -> None:
        from tests.servers import start_service

        self.gateway.stop()
        self.gateway = start_service("gateway", self.data, self.logs, port=self.gateway.port,
                                     **self.gateway_env).wait_ready()

    def stop(self) -> None:
        self.gateway.stop()
        for svc in self.backends.values():
            svc.stop()


@pytest.fixture(scope="module")
def stack(module_data: Path, log_dir: Path) -> Iterator[Stack]:
    s = Stack(module_data, log_dir)
    yield s
    s.stop()


# -- one stack shared by the gateway's contract tests -------------------------------------------
# test_gateway.py (the /v1 and seed routes) and test_gateway_oip.py (the /v2 routes) sort next to
# each other and use the same stack: started once, stopped right after the last test using it
SHARED_STACKS: list[Stack] = []
_last_gateway_test: list[str] = []


@pytest.fixture(scope="session")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory, tiny_registry_template: Path) -> Iterator[Stack]:
    root = data_dir(tmp_path_factory.mktemp("gateway-data"), tiny_registry_template, SAMPLES)
    s = Stack(root, tmp_path_factory.mktemp("gateway-logs"))
    SHARED_STACKS.append(s)
    yield s
    s.stop()


@pytest.hookimpl(trylast=True)  # after -k / -m deselected what will not run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    users = [item.nodeid for item in items if "gateway_stack" in getattr(item, "fixturenames", ())]
    _last_gateway_test[:] = users[-1:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _last_gateway_test and item.nodeid == _last_gateway_test[0]:
        for s in SHARED_STACKS:  # stopping twice is harmless: the session teardown finds them stopped
            s.stop()
