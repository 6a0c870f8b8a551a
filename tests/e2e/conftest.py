"""A real stack (vqa, qa, style, gateway on free 127.0.0.1 ports, tiny models) and Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.conftest import REPO, SAMPLES
from tests.fixtures import data_dir
from tests.servers import Service, free_port, start_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"  # 32 characters
SCREENSHOTS = REPO / "test-output" / "e2e"


@dataclass
class Stack:
    data: Path
    gateway: Service
    backends: list[Service]
    finetune_port: int = 0  # the gateway proxies /v1/finetune here; a test may start the service on it

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_registry_template: Path) -> Iterator[Stack]:
    data = data_dir(tmp_path_factory.mktemp("e2e-data"), tiny_registry_template, SAMPLES)
    logs = tmp_path_factory.mktemp("e2e-logs")
    # start all three backends before waiting on any: they load their models in parallel
    backends = [start_service(name, data, logs) for name in ("vqa", "qa", "style")]
    gateway: Service | None = None
    try:
        for backend in backends:
            backend.wait_ready()
        vqa, qa, style = backends
        finetune_port = free_port()
        gateway = start_service("gateway", data, logs, LOOPLINE_VQA_URL=vqa.url, LOOPLINE_QA_URL=qa.url,
                                LOOPLINE_STYLE_URL=style.url, LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN,
                                LOOPLINE_FINETUNE_URL=f"http://127.0.0.1:{finetune_port}").wait_ready()
        yield Stack(data, gateway, backends, finetune_port)
    finally:
        for service in ([gateway] if gateway else []) + backends:
            service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # module scope: the sync API runs an event loop in this thread until it exits, and a
    # loop left running would break every later test that calls asyncio.run()
    assert CHROMIUM.exists(), f"Debian chromium is not installed at {CHROMIUM}: run `make sysdeps`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """Console errors a user would never see but that mean the page is broken (CSP, exceptions)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.items.append(f"CSP: {text}")

    def error(self, exc: Exception) -> None:
        self.items.append(f"uncaught: {exc}")


def open_page(browser: Browser, problems: PageProblems, **context_options: object) -> tuple[BrowserContext, Page]:
    context = browser.new_context(**context_options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", problems.console)
    page.on("pageerror", problems.error)
    return context, page


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh desktop-sized tab; fails the test if the page hit a CSP violation or a JS exception."""
    problems = PageProblems()
    context, page = open_page(browser, problems, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    yield page
    context.close()
    assert not problems.items, "\n".join(problems.items)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A 375-px wide touch screen, the narrowest common phone."""
    problems = PageProblems()
    context, page = open_page(browser, problems, viewport={"width": 375, "height": 812}, device_scale_factor=2,
                              is_mobile=True, has_touch=True)
    yield page
    context.close()
    assert not problems.items, "\n".join(problems.items)


@pytest.fixture(scope="session")
def shots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
