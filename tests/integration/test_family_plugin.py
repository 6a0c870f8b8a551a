"""A fourth model family as a plugin: ``tests/plugins/loopline-echo-family`` is installed as its own
distribution (into a folder on ``PYTHONPATH``) and registers through the ``loopline.families``
entry point. Loopline, unchanged, serves it, records its events, takes feedback on it and
fine-tunes it; nothing outside the plugin names it."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures import ADMIN, EchoStack, wait_for

pytestmark = pytest.mark.integration


def test_the_plugin_family_is_served_recorded_fed_back_and_fine_tuned(echo_stack: EchoStack) -> None:
    url = echo_stack.gateway.url
    families = httpx.get(url + "/v1/families", timeout=10).json()["families"]
    echo = next(f for f in families if f["name"] == "echo")  # what the UI draws its panel from
    assert echo["route"] == "/v1/echo" and [i["name"] for i in echo["inputs"]] == ["text"]
    assert {"vqa", "qa", "style"} <= {f["name"] for f in families}
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200 and 'id="try-panels"' in page.text  # try.js fills it from /v1/families

    models = httpx.get(url + "/v1/models", timeout=10).json()["models"]
    assert [(m["name"], m["task"]) for m in models] == [("echo-tiny", "echo")]
    assert "/v1/echo" in httpx.get(url + "/openapi.json", timeout=10).json()["paths"]

    r = httpx.post(url + "/v1/echo", json={"text": "hello"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "HELLO" and r.json()["model"] == {"name": "echo-tiny", "task": "echo", "version": 1}
    assert httpx.post(url + "/v1/echo", json={"text": ""}, timeout=30).status_code == 422

    # the Open Inference Protocol speaks it too, from its declared signature
    meta = httpx.get(url + "/v2/models/echo-tiny", timeout=10).json()
    assert [t["name"] for t in meta["inputs"]] == ["text"] and meta["parameters"]["task"] == "echo"

    corrections = {"good morning": "bonjour", "thank you": "merci", "good night": "bonne nuit"}
    for text, correction in corrections.items():
        answered = httpx.post(url + "/v1/echo", json={"text": text}, timeout=30).json()
        fb = httpx.post(url + "/v1/feedback", headers=ADMIN, timeout=30,
                        json={"request_id": answered["request_id"], "rating": "bad", "correction": correction})
        assert fb.status_code == 201, fb.text
        assert fb.json()["trust"] == "accepted"

    summary = wait_for(lambda: httpx.get(url + "/v1/metrics/summary", params={"task": "echo"}, timeout=10).json(),
                       lambda s: sum(row["count"] for row in s["models"]) >= 4)  # the 422 never reached it
    assert [(row["task"], row["model"], row["count"], row["feedback_count"]) for row in summary["models"]] == [
        ("echo", "echo-tiny", 4, 3)]

    job = httpx.post(url + "/v1/finetune", headers=ADMIN, timeout=30, json={"model": "echo-tiny", "use_feedback": True})
    assert job.status_code in (201, 202), job.text
    done = wait_for(lambda: httpx.get(url + f"/v1/finetune/{job.json()['id']}", headers=ADMIN, timeout=10).json(),
                    lambda j: j["status"] in ("succeeded", "rejected", "failed", "cancelled"), timeout_s=120)
    assert done["status"] == "succeeded", done
    assert done["task"] == "echo" and done["version"] == 2 and done["data"]["feedback"] == 3

    # the backend picks the new version up and answers what it learned
    learned = wait_for(lambda: httpx.post(url + "/v1/echo", json={"text": "thank you"},
                                          headers={"X-Model-Version": "2"}, timeout=30),
                       lambda resp: resp.status_code == 200 and resp.json()["answer"] == "merci")
    assert learned.json()["model"]["version"] == 2
