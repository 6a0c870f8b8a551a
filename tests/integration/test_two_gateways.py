"""Two gateway replicas on one data dir and one event store, behind a round-robin client (what a
Kubernetes Service does): feedback for a request the *other* replica answered is accepted at
once, with the store up and with it down, and every event and feedback arrives exactly once.

Before the shared served-request index, feedback that reached the other replica within ~1 s of
the answer got 404, and during a store outage 503: (N-1)/N of all feedback with N replicas.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_event_store_outage import CONTEXT, Elastic, gateway_for, wait_delivered

pytestmark = pytest.mark.integration


@pytest.fixture
def elastic() -> Iterator[Elastic]:
    es = Elastic()
    yield es
    es.stop()


@pytest.fixture
def replicas(stack, elastic: Elastic) -> Iterator[list[Any]]:
    elastic.start()
    gateways = [gateway_for(stack, elastic) for _ in range(2)]
    try:
        for gw in gateways:
            gw.wait_ready(60)
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def _ask_and_rate_on_the_other(gateways: list[Any], n: int, tag: str) -> tuple[list[str], list[str]]:
    """Round robin: request i goes to replica i % 2, its feedback at once to the other one."""
    request_ids, feedback_ids = [], []
    turn = itertools.cycle(range(len(gateways)))
    for i in range(n):
        k = next(turn)
        answer = httpx.post(gateways[k].url + "/v1/qa", timeout=30,
                            json={"question": f"Who wrote it ({tag} {i})?", "context": CONTEXT})
        assert answer.status_code == 200, answer.text
        rid = answer.json()["request_id"]
        other = gateways[(k + 1) % len(gateways)]
        body: dict[str, Any] = {"request_id": rid, "rating": "bad" if i % 2 else "good"}
        if i % 3 == 0:
            body["correction"] = "Ada Lovelace"
        fb = httpx.post(other.url + "/v1/feedback", json=body, timeout=30)
        assert fb.status_code == 201, f"feedback on the other replica ({tag}): {fb.status_code} {fb.text}"
        request_ids.append(rid)
        feedback_ids.append(fb.json()["feedback_id"])
    return request_ids, feedback_ids


def test_feedback_reaches_any_replica_with_the_store_up_and_down(replicas: list[Any], elastic: Elastic) -> None:
    up_requests, up_feedback = _ask_and_rate_on_the_other(replicas, 6, "store up")
    elastic.stop()
    down_requests, down_feedback = _ask_and_rate_on_the_other(replicas, 6, "store down")
    unknown = httpx.post(replicas[0].url + "/v1/feedback", json={"request_id": "never-answered", "rating": "good"})
    assert unknown.status_code in (404, 503), "an id no replica answered is never accepted"
    elastic.start()
    wait_delivered(elastic, up_requests + down_requests, up_feedback + down_feedback, timeout_s=60)
    stored = {d["loopline"]["feedback_id"]: d for d in elastic.indices["loopline-events-feedback"]}
    for rid, fid in zip(up_requests + down_requests, up_feedback + down_feedback, strict=True):
        assert stored[fid]["http"]["request"]["id"] == rid if "http" in stored[fid] else True
