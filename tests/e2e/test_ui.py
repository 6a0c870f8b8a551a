"""The browser UI against a real stack: what a user clicks, sees, and what ends up stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from services.common.registry import Registry
from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.fixtures import copy_as_new_version, inference_rows

pytestmark = pytest.mark.e2e

IMAGE = "samples/images/blue_circle.jpg"
CONTENT = "samples/content/content_1.png"
CONTEXT = ("France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower "
           "and the Louvre Museum.")


def feedback_rows(data: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(data / "state" / "events.db") as conn:
        rows = conn.execute("SELECT request_id, rating, correction FROM feedback").fetchall()
    return {request_id: (rating, correction) for request_id, rating, correction in rows}


def request_id(panel: Locator) -> str:
    rid = panel.locator(".result").get_attribute("data-request-id")
    assert rid, "the answer carries no request id"
    return rid


def assert_no_horizontal_scroll(page: Page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"page is {scroll_width}px wide in a {inner_width}px viewport"


def sync_backend(stack: Stack, task: str) -> None:
    """Make a backend re-read the registry now and wait for it: a sync that began before an alias
    change (and may still be loading a version the aliases no longer name) finishes first, as the
    sync lock serialises them, so afterwards the backend serves what the aliases say now."""
    backend = {"vqa": 0, "qa": 1, "style": 2}[task]
    httpx.post(stack.backends[backend].url + "/v1/reload", timeout=120).raise_for_status()


def chart_total(page: Page, name: str) -> float:
    return float(page.locator(f'svg[data-chart="{name}"]').get_attribute("data-total") or 0)


def test_three_panels_answer_and_store_feedback(stack: Stack, page: Page, shots: Path) -> None:
    page.goto(stack.url + "/")
    expect(page).to_have_title("Try the models · Loopline")
    expect(page.locator("#health")).to_have_text("All services ready")

    vqa = page.locator("#vqa-panel")
    vqa.get_by_label("Image").set_input_files(stack.data / IMAGE)
    expect(vqa.get_by_role("img", name="The image you chose")).to_be_visible()
    vqa.get_by_label("Question").fill("what color is the shape?")
    vqa.get_by_role("button", name="Ask").click()
    expect(vqa.locator(".answer")).not_to_be_empty()
    expect(vqa.locator(".meta")).to_contain_text("vqa-blip v1")
    vqa.get_by_role("button", name="Bad").click()
    vqa.get_by_label("The right answer").fill("blue")
    vqa.get_by_role("button", name="Send feedback").click()
    expect(vqa.get_by_role("status")).to_contain_text("correction is saved")
    vqa_id = request_id(vqa)

    qa = page.locator("#qa-panel")
    qa.get_by_label("Question").fill("What is the capital of France?")
    qa.get_by_label("Text to search").fill(CONTEXT)
    qa.get_by_role("button", name="Find the answer").click()
    answer = qa.locator(".answer")
    expect(answer).not_to_be_empty()
    # the answer is shown in its context, marked where the model found it
    expect(qa.locator("mark")).to_have_text(answer.inner_text())
    qa.get_by_role("button", name="Good").click()
    expect(qa.get_by_role("status")).to_contain_text("Saved as a good answer")
    qa_id = request_id(qa)

    style = page.locator("#style-panel")
    expect(style.get_by_label("Style", exact=True).locator("option")).to_have_count(2)
    style.get_by_label("Style", exact=True).select_option("sketch")
    style.get_by_label("Image").set_input_files(stack.data / CONTENT)
    style.get_by_role("button", name="Stylize").click()
    result = style.get_by_role("img", name="Your image in the sketch style")
    expect(result).to_be_visible()
    assert result.evaluate("img => img.complete && img.naturalWidth > 0"), "the stylized PNG did not decode"
    with page.expect_download() as download_info:
        style.get_by_role("link", name="Download PNG").click()
    download = download_info.value
    assert download.suggested_filename.startswith("loopline-sketch-")
    assert Path(download.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    style.get_by_role("button", name="Bad").click()
    style.get_by_label("What should be different?").fill("too dark")
    style.get_by_role("button", name="Send feedback").click()
    expect(style.get_by_role("status")).to_contain_text("saved")
    style_id = request_id(style)

    page.screenshot(path=shots / "desktop-try-panels.png", full_page=True)
    stored = feedback_rows(stack.data)
    assert stored[vqa_id] == ("bad", "blue")
    assert stored[qa_id] == ("good", None)
    assert stored[style_id] == ("bad", "too dark")
    # every request carried this browser's sticky client id (canary stickiness)
    client_id = page.evaluate("localStorage.getItem('loopline.client-id')")
    sent = {rid: row[0] for rid, row in inference_rows(stack.data / "state" / "events.db", [vqa_id, qa_id, style_id],
                                                        "client_id").items()}
    assert client_id and [sent[rid] for rid in (vqa_id, qa_id, style_id)] == [client_id] * 3


def test_models_page_promotes_and_rolls_back(stack: Stack, page: Page, shots: Path) -> None:
    registry = Registry(stack.data / "registry")
    new = copy_as_new_version(registry, "qa-extractive")
    page.goto(stack.url + "/#/models")
    card = page.locator('[data-model="qa-extractive"]')
    expect(card.locator(f'tr[data-version="{new.version}"]')).to_be_visible()
    promote = card.get_by_role("button", name=f"Make qa-extractive v{new.version} production")

    # a wrong token: the 401 is spelled out next to the button, and nothing changes
    page.get_by_label("Admin token", exact=True).fill("not-the-token")
    page.get_by_role("button", name="Use token").click()
    promote.click()
    alert = card.get_by_role("alert")
    expect(alert).to_contain_text("Not authorised (401)")
    expect(alert).to_contain_text("admin token is wrong")
    expect(alert).to_contain_text("Check the admin token above")
    page.screenshot(path=shots / "desktop-models-wrong-token.png", full_page=True)
    assert registry.aliases("qa-extractive")["production"] == 1

    page.get_by_label("Admin token", exact=True).fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Use token").click()
    promote.click()
    expect(card.get_by_role("status")).to_contain_text(f"production is now v{new.version} (was v1)")
    expect(card.locator('[data-alias="production"]')).to_have_text(f"v{new.version}")
    assert registry.aliases("qa-extractive")["production"] == new.version
    # the token stays in this tab only
    assert page.evaluate("sessionStorage.getItem('loopline.admin-token')") == ADMIN_TOKEN
    assert page.evaluate("Object.values(localStorage).includes(sessionStorage.getItem('loopline.admin-token'))") is False
    page.screenshot(path=shots / "desktop-models-promoted.png", full_page=True)

    card.get_by_role("button", name="Roll back qa-extractive production to v1").click()
    expect(card.get_by_role("status")).to_contain_text("rolled back to v1")
    expect(card.locator('[data-alias="production"]')).to_have_text("v1")
    expect(card.get_by_role("button", name="no earlier production version")).to_be_disabled()
    assert registry.aliases("qa-extractive")["production"] == 1

    card.get_by_label("Canary share (%)").fill("25")
    card.get_by_role("button", name=f"Make qa-extractive v{new.version} the canary").click()
    expect(card.get_by_role("status")).to_contain_text(f"canary is now v{new.version} with 25% of traffic")
    aliases = registry.aliases("qa-extractive")
    assert (aliases["production"], aliases["canary"], aliases["canary_weight"]) == (1, new.version, 0.25)


def test_monitoring_charts_follow_new_traffic(stack: Stack, page: Page, shots: Path) -> None:
    # an earlier test may have left a canary and a production that moved to v2 and back: these
    # requests must all land on production v1, so the QA service must have caught up with the
    # aliases (it re-reads them every second and loads a version before serving it)
    Registry(stack.data / "registry").clear_canary("qa-extractive")
    sync_backend(stack, "qa")
    page.clock.install()  # auto-refresh runs on a timer this test can move forward
    page.goto(stack.url + "/#/monitoring")
    expect(page.locator('svg[data-chart="count"]')).to_be_attached()
    expect(page.get_by_role("checkbox", name="Auto-refresh")).to_be_checked()
    before = chart_total(page, "count")

    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for question in ("What is the capital of France?", "Where is France?", "What is in Paris?"):
            client.post("/v1/qa", json={"question": question, "context": CONTEXT}).raise_for_status()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator('svg[data-chart="count"]')).to_have_attribute("data-total", f"{before + 3:g}")
    qa_bar = page.locator('svg[data-chart="count"] g[data-key="qa-extractive:1"] rect.bar')
    assert float(qa_bar.get_attribute("data-value") or 0) >= 3
    assert page.locator('svg[data-chart="latency"] g[data-key="qa-extractive:1"] line.tick').count() == 1
    page.screenshot(path=shots / "desktop-monitoring.png", full_page=True)

    # a failed request shows up on the next automatic refresh, without a click
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        bad = client.post("/v1/vqa", files={"image": ("notes.txt", b"not an image", "text/plain")},
                          data={"question": "what is this?"})
        assert bad.status_code == 415
    page.clock.run_for(11_000)
    expect(page.locator('svg[data-chart="count"]')).to_have_attribute("data-total", f"{before + 4:g}")
    errors = page.locator('svg[data-chart="errors"] rect.bar[data-value="1"]')
    expect(errors.first).to_be_attached()
    expect(page.locator('[data-tile="count"]')).to_have_text(f"{before + 4:,.0f}")
    page.screenshot(path=shots / "desktop-monitoring-after-error.png", full_page=True)


def test_client_errors_are_shown_in_the_page(stack: Stack, page: Page, shots: Path) -> None:
    page.goto(stack.url + "/")
    vqa = page.locator("#vqa-panel")
    vqa.get_by_role("button", name="Ask").click()
    expect(vqa.get_by_role("alert")).to_contain_text("Image is required")

    vqa.get_by_label("Image").set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"this is not a picture"}])
    vqa.get_by_label("Question").fill("what is this?")
    vqa.get_by_role("button", name="Ask").click()
    alert = vqa.get_by_role("alert")
    expect(alert).to_contain_text("Unsupported file (415)")
    expect(alert).to_contain_text("could not read the image")
    expect(vqa.locator(".result")).to_be_hidden()
    page.screenshot(path=shots / "desktop-error-415.png", full_page=True)

    new = copy_as_new_version(Registry(stack.data / "registry"), "vqa-blip")
    page.goto(stack.url + "/#/models")
    card = page.locator('[data-model="vqa-blip"]')
    card.get_by_role("button", name=f"Make vqa-blip v{new.version} production").click()
    expect(card.get_by_role("alert")).to_contain_text("Not authorised (401)")
    expect(card.get_by_role("alert")).to_contain_text("Enter the admin token above")
    assert Registry(stack.data / "registry").aliases("vqa-blip")["production"] == 1


def assert_every_control_labelled(page: Page) -> None:
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
        .filter((e) => !e.labels.length && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
        .map((e) => e.id || e.name || e.outerHTML)""")
    assert unlabelled == [], f"controls without a label: {unlabelled}"


def test_phone_width_has_no_horizontal_scroll(stack: Stack, phone: Page, shots: Path) -> None:
    phone.goto(stack.url + "/")
    qa = phone.locator("#qa-panel")
    qa.get_by_role("button", name="Fill in an example").click()
    qa.get_by_role("button", name="Find the answer").click()
    expect(qa.locator(".answer")).not_to_be_empty()
    assert_no_horizontal_scroll(phone)
    assert_every_control_labelled(phone)
    phone.screenshot(path=shots / "phone-try.png", full_page=True)

    phone.get_by_role("navigation").get_by_role("link", name="Models", exact=True).click()
    expect(phone.locator('[data-model="qa-extractive"]')).to_be_visible()
    # version rows become blocks: the actions fit on screen instead of scrolling sideways
    promote = phone.locator('[data-model="qa-extractive"] button.promote').first
    box = promote.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375
    assert_no_horizontal_scroll(phone)
    phone.screenshot(path=shots / "phone-models.png", full_page=True)

    phone.get_by_role("navigation").get_by_role("link", name="Monitoring", exact=True).click()
    expect(phone.locator('svg[data-chart="count"]')).to_be_attached()
    chart_box = phone.locator('svg[data-chart="count"]').bounding_box()
    assert chart_box is not None and chart_box["x"] + chart_box["width"] <= 375
    assert_no_horizontal_scroll(phone)
    assert_every_control_labelled(phone)  # now including the Models page's per-model controls
    phone.screenshot(path=shots / "phone-monitoring.png", full_page=True)


def test_feedback_page_shows_pending_groups_and_a_reviewer_accepts_one(stack: Stack, page: Page, shots: Path) -> None:
    from services.common.keys import KeyStore

    key = KeyStore(stack.data / "state").create("e2e-reviewer", "reviewer")
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for user in ("ann", "bob"):
            answer = client.post("/v1/vqa", json={"image_path": IMAGE, "question": "what colour is the circle?"},
                                 headers={"X-Client-Id": user}).json()
            fb = client.post("/v1/feedback", json={"request_id": answer["request_id"], "rating": "bad",
                                                   "correction": "teal"}, headers={"X-Client-Id": user})
            assert fb.json()["trust"] == "pending" and fb.json()["sender"] == f"client:{user}"
    page.goto(stack.url + "/#/feedback")
    expect(page.locator("#review-error")).to_contain_text("401")
    page.get_by_label("Reviewer key").fill(key)
    page.get_by_role("button", name="Use key").click()
    card = page.locator(".group-card", has_text="“teal”")
    expect(card.locator("[data-senders]")).to_have_text("2 distinct sender(s)")
    expect(card.locator(".badge.trust-pending")).to_have_text("2 pending")
    expect(card.locator("img.thumb").first).to_be_visible()  # the VQA image, fetched with the key
    page.screenshot(path=shots / "desktop-feedback-pending.png", full_page=True)
    card.get_by_role("button", name="Accept group").click()
    expect(page.locator("#review-status")).to_contain_text("Accepted 2 correction(s)")
    page.get_by_label("Show").select_option("accepted")
    expect(page.locator(".group-card", has_text="“teal”").locator(".badge.trust-accepted")).to_have_text("2 accepted")
    audit = httpx.get(stack.url + "/v1/feedback/reviews", headers={"Authorization": f"Bearer {key}"}).json()
    assert audit["reviews"][0]["by"] == "key:e2e-reviewer" and len(audit["reviews"][0]["feedback_ids"]) == 2


def test_training_page_shows_the_gate_slice_by_slice_and_promotes(stack: Stack, page: Page, shots: Path,
                                                                 tmp_path: Path) -> None:
    from services.finetune.store import JobStore
    from tests.servers import start_service

    registry = Registry(stack.data / "registry")
    new = copy_as_new_version(registry, "vqa-blip")
    jobs = JobStore(stack.data / "state" / "finetune.db")
    slices = [{"slice": "answer=red", "new": 0.1, "production": 0.9, "count": 10, "passed": False},
              {"slice": "kind=color", "new": 0.85, "production": 0.9, "count": 37, "passed": True}]
    gate = {"passed": False, "reason": "gate refused: slices: slice answer=red: accuracy 0.10 vs production 0.90",
            "checks": [{"name": "no_worse", "passed": True, "detail": "held-out accuracy 1.0 vs production 0.2"},
                       {"name": "slices", "passed": False, "detail": "slice answer=red: accuracy 0.10 vs production "
                        "0.90 (10 items)", "slices": slices}]}
    job = jobs.create(model="vqa-blip", task="vqa", runner="embedded", request={"model": "vqa-blip", "trigger": "e2e"})
    jobs.finish(job.id, "rejected", error=gate["reason"], version=new.version, gate=gate,
                data={"corrections": [{"feedback_id": "f1", "sender": "client:ann", "correction": "blue"}]})
    jobs.close()
    finetune = start_service("finetune", stack.data, tmp_path, port=stack.finetune_port,
                             LOOPLINE_ADMIN_TOKEN=ADMIN_TOKEN, LOOPLINE_FINETUNE_NUM_THREADS="1").wait_ready(60)
    try:
        page.goto(stack.url + "/#/training")
        page.get_by_label("Admin token for training").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Use token for training").click()
        card = page.locator(f'[data-job="{job.id}"]')
        expect(card.locator("[data-status]")).to_have_text("rejected")
        expect(card.locator("[data-senders]")).to_have_text("client:ann")
        expect(card.locator('[data-check="slices"]')).to_contain_text("answer=red: accuracy 0.10 vs production 0.90")
        card.locator(".slices summary").click()
        expect(card.locator('tr[data-slice="answer=red"]')).to_contain_text("lost too much")
        expect(card.locator("[data-serving]")).to_have_text("not serving")
        page.screenshot(path=shots / "desktop-training-gate.png", full_page=True)
        card.get_by_role("button", name=f"Make vqa-blip v{new.version} production").click()
        expect(page.locator("#training-status")).to_contain_text(f"production is now v{new.version}")
        assert registry.aliases("vqa-blip")["production"] == new.version
        card = page.locator(f'[data-job="{job.id}"]')
        expect(card.locator("[data-serving]")).to_have_text("production")
        card.get_by_role("button", name="Roll back vqa-blip production").click()
        expect(page.locator("#training-status")).to_contain_text("rolled back to v1")
        assert registry.aliases("vqa-blip")["production"] == 1
    finally:
        finetune.stop()
    sync_backend(stack, "vqa")
