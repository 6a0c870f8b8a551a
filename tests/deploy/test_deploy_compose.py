"""The compose stack: docker-compose accepts it, and it wires what the services expect."""

from __future__ import annotations

import pytest
import yaml
from deploy_helpers import REPO, run, tool

from services.common.settings import CommonSettings
from services.ops.entrypoints import ENTRYPOINTS

pytestmark = pytest.mark.deploy

TOKEN = {"LOOPLINE_ADMIN_TOKEN": "compose-test-token-0123456789"}


@pytest.fixture(scope="module")
def compose() -> dict:
    result = run([tool("docker-compose"), "-f", "docker-compose.yml", "config"], env=TOKEN)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_refuses_to_start_without_an_admin_token() -> None:
    result = run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"],
                 env={"LOOPLINE_ADMIN_TOKEN": ""})
    assert result.returncode != 0 and "LOOPLINE_ADMIN_TOKEN" in result.stderr


def test_every_service_with_its_own_image_and_entry_point(compose: dict) -> None:
    services = compose["services"]
    for name in ENTRYPOINTS:
        svc = services[name]
        assert svc["build"]["dockerfile"] == f"docker/{name}.Dockerfile"
        assert (REPO / svc["build"]["dockerfile"]).is_file()
        assert svc["environment"]["LOOPLINE_HOST"] == "0.0.0.0"
        assert svc["environment"]["LOOPLINE_DATA_DIR"] == "/data"
        assert svc["environment"]["LOOPLINE_LOG_FILE"] == f"/var/log/loopline/{name}.json"
        assert any(v.startswith("loopline-data:/data") or v.get("target") == "/data"
                   for v in _volumes(svc)), f"{name} lacks the shared data volume"
        assert "healthcheck" in svc and svc["read_only"] is True


def test_backend_urls_match_the_ports_in_settings(compose: dict) -> None:
    env = compose["services"]["gateway"]["environment"]
    settings = CommonSettings()
    for backend in ("vqa", "qa", "style", "finetune"):
        assert env[f"LOOPLINE_{backend.upper()}_URL"] == f"http://{backend}:{settings.port_of(backend)}"
    # one event store for every service that reads or writes events (shared settings)
    for service in ("gateway", "finetune", "watchdog"):
        env = compose["services"][service]["environment"]
        assert env["LOOPLINE_EVENTS_STORE"] == "elasticsearch", service
        assert env["LOOPLINE_EVENTS_ELASTICSEARCH_URL"] == "http://elasticsearch:9200", service


def test_startup_order_waits_for_health(compose: dict) -> None:
    services = compose["services"]
    gateway = services["gateway"]["depends_on"]
    for backend in ("vqa", "qa", "style"):
        assert gateway[backend]["condition"] == "service_healthy"
    # the event store is a convenience ordering, not a requirement: the gateway spools while it is down
    assert gateway["elasticsearch"]["condition"] == "service_started"
    assert services["kibana"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert services["kibana-setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    for name in ("elasticsearch", "kibana"):
        assert "healthcheck" in services[name]
    for name in ("vqa", "qa", "style"):
        assert "/readyz" in services[name]["healthcheck"]["test"]


def test_filebeat_reads_the_services_log_volume(compose: dict) -> None:
    filebeat = compose["services"]["filebeat"]
    assert any(str(v).startswith("loopline-logs:/var/log/loopline") or v.get("source") == "loopline-logs"
               for v in _volumes(filebeat))
    assert compose["services"]["kibana-setup"]["command"] == ["loopline-kibana-import"]


def _volumes(svc: dict) -> list:
    out = []
    for v in svc.get("volumes", []):
        out.append(v if isinstance(v, dict) else str(v))
    return [v if isinstance(v, dict) else _Str(v) for v in out]


class _Str(str):
    def get(self, _key: str) -> None:
        return None
