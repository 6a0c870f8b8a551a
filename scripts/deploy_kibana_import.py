#!/usr/bin/env python3
"""Import Loopline's Kibana saved objects (index pattern, searches, dashboards) once.

Runs as the compose ``kibana-setup`` service and the Kubernetes ``kibana-import`` Job, both
from the gateway image, which ships ``services/gateway/kibana/saved_objects.ndjson`` as
package data. Waits (with a deadline) until Kibana answers, then POSTs the file to
``/api/saved_objects/_import?overwrite=true``: running it twice is harmless.

Environment: KIBANA_URL (default http://kibana:5601), KIBANA_USERNAME / KIBANA_PASSWORD
(basic auth when Elasticsearch security is on), KIBANA_IMPORT_TIMEOUT_S (default 600).
"""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

import httpx

SAVED_OBJECTS = ("services.gateway", "kibana/saved_objects.ndjson")


def saved_objects_file() -> Path:
    override = os.environ.get("KIBANA_SAVED_OBJECTS")
    if override:
        return Path(override)
    package, name = SAVED_OBJECTS
    return Path(str(resources.files(package).joinpath(name)))


def wait_for_kibana(client: httpx.Client, deadline: float) -> None:
    while True:
        try:
            if client.get("/api/status").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("Kibana did not become available before the deadline")
        time.sleep(5)


def main() -> int:
    url = os.environ.get("KIBANA_URL", "http://kibana:5601").rstrip("/")
    user, password = os.environ.get("KIBANA_USERNAME"), os.environ.get("KIBANA_PASSWORD")
    auth = (user, password) if user and password else None
    deadline = time.monotonic() + float(os.environ.get("KIBANA_IMPORT_TIMEOUT_S", "600"))
    path = saved_objects_file()
    with httpx.Client(base_url=url, auth=auth, timeout=30, headers={"kbn-xsrf": "true"}) as client:
        wait_for_kibana(client, deadline)
        with path.open("rb") as fh:
            response = client.post("/api/saved_objects/_import", params={"overwrite": "true"},
                                   files={"file": (path.name, fh, "application/ndjson")})
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or not body.get("success", False):
        print(f"import failed: HTTP {response.status_code}: {response.text[:2000]}", file=sys.stderr)
        return 1
    print(f"imported {body.get('successCount', 0)} saved objects from {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
