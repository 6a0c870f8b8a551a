"""The committed Kibana saved objects are well formed and only chart fields the store maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.events.elastic import ECS_MAPPINGS

pytestmark = pytest.mark.unit
NDJSON = Path(__file__).resolve().parents[2] / "services" / "gateway" / "kibana" / "saved_objects.ndjson"


def mapped_fields(props: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, spec in props.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out |= mapped_fields(spec["properties"], path + ".")
        else:
            out.add(path)
    return out


def test_saved_objects_reference_each_other_and_mapped_fields() -> None:
    objects = [json.loads(line) for line in NDJSON.read_text().splitlines()]
    by_id = {(o["type"], o["id"]) for o in objects}
    types = {o["type"] for o in objects}
    assert {"index-pattern", "visualization", "dashboard"} <= types
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_id, ref
    fields = mapped_fields(ECS_MAPPINGS["properties"])
    charted = set()
    for obj in objects:
        if obj["type"] == "visualization":
            for agg in json.loads(obj["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    charted.add(agg["params"]["field"])
    assert charted and charted <= fields, charted - fields
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    assert len(json.loads(dashboard["attributes"]["panelsJSON"])) == 4


def test_the_filebeat_logs_have_a_data_view_and_a_saved_search() -> None:
    import re

    import yaml

    objects = [json.loads(line) for line in NDJSON.read_text().splitlines()]
    filebeat = yaml.safe_load((NDJSON.parents[3] / "docker" / "filebeat" / "filebeat.yml").read_text())
    index = filebeat["output.elasticsearch"]["index"] if "output.elasticsearch" in filebeat else \
        filebeat["output"]["elasticsearch"]["index"]
    prefix = re.sub(r"%\{.*\}$", "", index)  # loopline-logs-%{+yyyy.MM.dd} -> loopline-logs-
    (logs_view,) = [o for o in objects if o["type"] == "index-pattern" and o["attributes"]["title"] == prefix + "*"]
    (search,) = [o for o in objects if o["type"] == "search" and "log.level" in o["attributes"]["columns"]]
    assert search["references"][0]["id"] == logs_view["id"], "the saved search reads the logs, not the events"
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert "log.level" in source["query"]["query"] and "trace.id" in search["attributes"]["columns"]


def test_feedback_senders_have_a_saved_search_on_mapped_fields() -> None:
    objects = [json.loads(line) for line in NDJSON.read_text().splitlines()]
    (search,) = [o for o in objects if o["id"] == "loopline-feedback-senders"]
    fields = mapped_fields(ECS_MAPPINGS["properties"])
    assert {"loopline.sender", "loopline.trust"} <= set(search["attributes"]["columns"]) <= fields
