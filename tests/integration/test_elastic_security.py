"""The Elasticsearch stand-in enforces users and privileges like a secured cluster (401 without
valid credentials, 403 for an action the role lacks), with the roles exactly as rendered into
k8s/elk/elasticsearch-security.yaml: each service's role and Filebeat's are exercised by the real
clients. (Before, the stand-in accepted anything, so a role that could not do its job, such as
Filebeat's, which may not manage templates, passed every test.)"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.events import FeedbackRecord, InferenceEvent
from services.common.events.elastic import ElasticEventStore, setup_requests
from tests.standins import Security, StandIn, elasticsearch_handler, serve

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "stand-in-password-0123"


SECURITY = REPO / "k8s" / "elk" / "elasticsearch-security.yaml"
SUPERUSER = {"cluster": ["all"], "indices": [{"names": ["*"], "privileges": ["all"]}]}
SERVICES = ("loopline-gateway", "loopline-finetune", "loopline-watchdog")


def rendered(kind: str, name: str) -> dict:
    for doc in yaml.safe_load_all(SECURITY.read_text()):
        if doc and doc["kind"] == kind and doc["metadata"]["name"].startswith(name):
            return doc
    raise AssertionError(f"no {kind} {name} rendered")


def rendered_roles() -> dict[str, dict]:
    data = rendered("ConfigMap", "elasticsearch-roles")["data"]
    return {name.removesuffix(".json"): json.loads(body) for name, body in data.items()}


@pytest.fixture(scope="module")
def es() -> Iterator[StandIn]:
    users = {user: (PASSWORD, role) for user, role in rendered_roles().items()}
    users["elastic"] = (PASSWORD, SUPERUSER)
    server = serve(elasticsearch_handler(security=Security(users)))
    yield server
    server.stop()


def test_no_or_wrong_credentials_are_401(es: StandIn) -> None:
    anonymous = httpx.get(es.url + "/")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "security_exception"
    assert "WWW-Authenticate" in anonymous.headers
    assert httpx.get(es.url + "/", auth=("loopline-gateway", "wrong")).status_code == 401


@pytest.mark.parametrize("user", SERVICES)
def test_service_roles_may_not_manage_templates_or_ilm(es: StandIn, user: str) -> None:
    """Template and ILM rights are cluster-wide: the security Job installs them, no service may."""
    for path, body in setup_requests("loopline-events"):
        r = httpx.put(f"{es.url}/{path}", auth=(user, PASSWORD), json=body)
        assert r.status_code == 403, (user, path, r.status_code)
    assert httpx.put(f"{es.url}/_index_template/other", auth=(user, PASSWORD),
                     json={"index_patterns": ["*"]}).status_code == 403


def test_the_security_job_installs_the_event_store_templates(es: StandIn, tmp_path: Path) -> None:
    """Run the rendered Job's script (paths and host pointed at the stand-in) as the superuser:
    it creates the roles and users and PUTs exactly the store's policy and templates."""
    job = rendered("Job", "elasticsearch-security")["spec"]["template"]["spec"]
    script = job["containers"][0]["command"][-1]
    for folder, data in (("roles", rendered("ConfigMap", "elasticsearch-roles")["data"]),
                         ("setup", rendered("ConfigMap", "elasticsearch-event-store-setup")["data"]),
                         ("passwords", {u: PASSWORD for u in rendered_roles()})):
        (tmp_path / folder).mkdir()
        for name, body in data.items():
            (tmp_path / folder / name).write_text(body)
    (tmp_path / "tmp").mkdir()
    script = script.replace("http://elasticsearch:9200", es.url)
    for folder in ("tmp", "roles", "setup", "passwords"):  # /tmp first: tmp_path is under it
        script = script.replace(f"/{folder}/", f"{tmp_path}/{folder}/")
    before = len(es.requests)
    done = subprocess.run(["bash", "-euc", script], env={"ELASTIC_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    puts = {r.path.lstrip("/"): r.json() for r in es.requests[before:] if r.method == "PUT"}
    for path, body in setup_requests("loopline-events"):
        assert puts.get(path) == body, f"the security Job does not install {path} as the store would"
    assert {f"_security/role/{u}" for u in rendered_roles()} <= set(puts)


def test_the_gateway_role_writes_and_reads_its_events(es: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    """With the narrowed role the store's install gets 403: one warning, and the store works."""
    with caplog.at_level(logging.WARNING, logger="loopline.events.elastic"):
        store = ElasticEventStore(es.url, username="loopline-gateway", password=PASSWORD, flush_interval_s=0.05)
    warnings = [r for r in caplog.records if r.name == "loopline.events.elastic" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "security Job" in warnings[0].getMessage()
    try:
        store.record_inference(InferenceEvent(request_id="sec-1", task="qa", model="qa-extractive", version=1,
                                              latency_ms=3.0, status=200))
        store.flush()
        feedback_id = store.record_feedback(FeedbackRecord(request_id="sec-1", rating="good", task="qa",
                                                           model="qa-extractive", version=1))
        assert feedback_id
        store._recent.clear()  # read it back from "Elasticsearch", not the client's cache
        assert store.get_request("sec-1") is not None
    finally:
        store.close()


def test_the_watchdog_role_may_not_write_feedback(es: StandIn) -> None:
    """Only the gateway records feedback (an `index` by id); the watchdog may create and read events."""
    r = httpx.put(es.url + "/loopline-events-feedback/_doc/x1", auth=("loopline-watchdog", PASSWORD),
                  json={"rating": "bad"})
    assert r.status_code == 403 and "unauthorized for user [loopline-watchdog]" in r.json()["error"]["reason"]
    r = httpx.post(es.url + "/loopline-events/_search", auth=("loopline-watchdog", PASSWORD), json={})
    assert r.status_code == 200


def test_filebeat_ships_logs_but_may_not_manage_templates(es: StandIn) -> None:
    auth = ("loopline-filebeat", PASSWORD)
    template = httpx.put(es.url + "/_index_template/loopline-logs", auth=auth, json={"index_patterns": ["loopline-logs-*"]})
    assert template.status_code == 403, "Filebeat's role cannot install templates"
    config = yaml.safe_load((REPO / "docker" / "filebeat" / "filebeat.yml").read_text())
    assert config.get("setup.template.enabled") is False, \
        "Filebeat must not try to (it would fail to connect forever and ship nothing)"
    bulk = "\n".join([json.dumps({"create": {"_index": "loopline-logs-2026.12.05"}}),
                      json.dumps({"message": "hello", "@timestamp": "2026-12-05T00:00:00Z"}),
                      json.dumps({"create": {"_index": "loopline-events"}}),
                      json.dumps({"message": "not mine"})]) + "\n"
    r = httpx.post(es.url + "/_bulk", auth=auth, content=bulk, headers={"Content-Type": "application/x-ndjson"})
    items = [next(iter(i.values())) for i in r.json()["items"]]
    assert r.status_code == 200 and [i["status"] for i in items] == [201, 403], items


def test_no_rollover_policy_on_an_index_without_a_rollover_alias(es: StandIn) -> None:
    """ILM's rollover needs a data stream or a rollover alias; the feedback index is neither."""
    requests = setup_requests("loopline-events")  # what the store and the security Job install
    templates = {p.rsplit("/", 1)[-1]: b for p, b in requests if p.startswith("_index_template/")}
    policies = {p.rsplit("/", 1)[-1]: b["policy"] for p, b in requests if p.startswith("_ilm/policy/")}
    assert templates
    for name, body in templates.items():
        settings = body.get("template", {}).get("settings", {})
        policy = policies.get(settings.get("index.lifecycle.name", ""), {})
        if "rollover" in json.dumps(policy):
            assert "data_stream" in body or settings.get("index.lifecycle.rollover_alias"), \
                f"{name}: a rollover policy on a plain index without a rollover alias stalls ILM"
