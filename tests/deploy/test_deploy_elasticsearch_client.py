"""The Elasticsearch client's major matches the 8.15 server the stack ships; a 9.x client is refused."""

from __future__ import annotations

import httpx
import pytest

from tests.standins import elasticsearch_handler, serve

pytestmark = pytest.mark.deploy

V9 = "application/vnd.elasticsearch+json; compatible-with=9"


@pytest.fixture
def es8():
    standin = serve(elasticsearch_handler(major=8))
    yield standin
    standin.stop()


def test_an_8x_server_refuses_a_9x_clients_headers(es8) -> None:
    r = httpx.get(es8.url + "/", headers={"Accept": V9, "Content-Type": V9})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "media_type_header_exception"


def test_the_installed_client_talks_to_the_8x_server(es8) -> None:
    import elasticsearch

    assert elasticsearch.__versionstr__.split(".")[0] == "8"
    info = elasticsearch.Elasticsearch(es8.url).info()
    assert info["version"]["number"].startswith("8.")
    sent = es8.requests[-1].headers["accept"]
    assert "compatible-with=8" in sent
