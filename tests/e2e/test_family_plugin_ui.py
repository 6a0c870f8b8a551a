"""The browser UI draws a panel for a plugin family from what it declares (GET /v1/families): the
echo family installed as its own distribution gets a working panel, answer, model line and
feedback, with no UI file naming it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures import EchoStack

pytestmark = pytest.mark.e2e


def test_a_plugin_family_gets_its_own_panel(echo_stack: EchoStack, page: Page) -> None:
    page.goto(echo_stack.gateway.url + "/")
    echo = page.locator("#echo-panel")
    expect(echo.get_by_role("heading", name="Echo a text")).to_be_visible()
    echo.get_by_role("button", name="Echo").click()
    expect(echo.get_by_role("alert")).to_contain_text("Text is required")
    echo.get_by_label("Text").fill("good evening")
    echo.get_by_role("button", name="Echo").click()
    expect(echo.locator(".answer")).to_have_text("GOOD EVENING")
    expect(echo.locator(".meta")).to_contain_text("echo-tiny v1")
    echo.get_by_role("button", name="Bad").click()
    echo.get_by_label("The right answer").fill("bonsoir")
    echo.get_by_role("button", name="Send feedback").click()
    expect(echo.get_by_role("status")).to_contain_text("saved")
    # the monitoring page lists it among the tasks, with a colour of its own
    page.get_by_role("navigation").get_by_role("link", name="Monitoring", exact=True).click()
    expect(page.locator("#monitor-task option[value=echo]")).to_have_count(1)
    expect(page.locator("#monitor-legend li", has_text="echo").locator(".swatch")).to_have_class("swatch task-c3")
