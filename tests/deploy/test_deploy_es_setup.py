"""The event store's Elasticsearch policy and templates are installed by the security Job (as the
superuser), so no service role holds cluster-wide template or ILM rights (issue 25, defect 15)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.common.events.elastic import setup_file_text, setup_requests

REPO = Path(__file__).resolve().parents[2]
SETUP_FILE = REPO / "ansible" / "roles" / "elk" / "files" / "event-store-setup.json"
CLUSTER_WIDE = {"manage_ilm", "manage_index_templates", "manage", "all"}


def security_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO / "k8s" / "elk" / "elasticsearch-security.yaml").read_text()) if d]


def test_the_job_s_copy_of_the_setup_is_the_store_s() -> None:
    assert SETUP_FILE.read_text() == setup_file_text(), \
        f"{SETUP_FILE.relative_to(REPO)} is stale: python -m services.common.events.elastic > it, then make render"


def test_the_security_job_puts_every_setup_request() -> None:
    docs = security_docs()
    setup = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "elasticsearch-event-store-setup")
    script = next(d for d in docs if d["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    bodies = [json.loads(body) for _, body in sorted(setup["data"].items())]
    assert bodies == [body for _, body in setup_requests("loopline-events")]
    for path, _ in setup_requests("loopline-events"):
        assert f'-X PUT "$es/{path}"' in script, path


def test_service_roles_hold_no_template_or_ilm_rights() -> None:
    roles = next(d for d in security_docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "elasticsearch-roles")
    for name, body in roles["data"].items():
        cluster = set(json.loads(body)["cluster"])
        assert not cluster & CLUSTER_WIDE, f"{name}: {sorted(cluster & CLUSTER_WIDE)}"
