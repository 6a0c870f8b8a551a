"""Regenerate services/gateway/kibana/saved_objects.ndjson: the events data view and dashboard,
and the logs data view (Filebeat's ``loopline-logs-*``) with a saved search of warnings and errors.

Legacy aggregation-based visualizations: they import unchanged into Kibana 8.x and 9.x.
Import with scripts/deploy_kibana_import.py (compose and Kubernetes run it once), or:
curl -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" -H "kbn-xsrf: true" \
     --form file=@services/gateway/kibana/saved_objects.ndjson
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "services" / "gateway" / "kibana" / "saved_objects.ndjson"
DATA_VIEW = "loopline-events-dv"
LOGS_VIEW = "loopline-logs-dv"
LOG_COLUMNS = ["service.name", "log.level", "message", "trace.id", "ml.model.name", "event.action"]
VERSION = "8.11.0"


def vis(vid: str, title: str, vis_type: str, aggs: list[dict], query: str) -> dict:
    params = {"type": vis_type, "addTooltip": True, "addLegend": True, "legendPosition": "right"}
    return {
        "type": "visualization", "id": vid, "coreMigrationVersion": VERSION,
        "attributes": {
            "title": title, "description": "", "version": 1, "uiStateJSON": "{}",
            "visState": json.dumps({"title": title, "type": vis_type, "params": params, "aggs": aggs}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({
                "query": {"query": query, "language": "kuery"}, "filter": [],
                "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"})},
        },
        "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                        "id": DATA_VIEW}],
    }


def date_histogram(agg_id: str = "2") -> dict:
    return {"id": agg_id, "enabled": True, "type": "date_histogram", "schema": "segment",
            "params": {"field": "@timestamp", "interval": "auto", "min_doc_count": 1}}


def terms(agg_id: str, field: str, schema: str = "group", size: int = 10) -> dict:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1"}}


def main() -> None:
    objects = [{
        "type": "index-pattern", "id": DATA_VIEW, "coreMigrationVersion": VERSION,
        "attributes": {"title": "loopline-events*", "name": "Loopline events", "timeFieldName": "@timestamp"},
        "references": [],
    }]
    objects.append(vis("loopline-latency", "Loopline: latency p50/p95 over time", "line", [
        {"id": "1", "enabled": True, "type": "percentiles", "schema": "metric",
         "params": {"field": "loopline.latency_ms", "percents": [50, 95]}},
        date_histogram(), terms("3", "loopline.task")], "event.action : \"inference\""))
    objects.append(vis("loopline-confidence", "Loopline: mean confidence by model version", "line", [
        {"id": "1", "enabled": True, "type": "avg", "schema": "metric", "params": {"field": "loopline.confidence"}},
        date_histogram(), terms("3", "loopline.version")], "event.action : \"inference\""))
    objects.append(vis("loopline-feedback", "Loopline: feedback good vs bad", "histogram", [
        {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
        date_histogram(), terms("3", "loopline.rating")], "event.action : \"feedback\""))
    objects.append(vis("loopline-errors", "Loopline: errors by code", "histogram", [
        {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
        date_histogram(), terms("3", "error.code")],
        "event.action : \"inference\" and http.response.status_code >= 400"))
    panels, refs = [], []
    for i, obj in enumerate(objects[1:]):
        panels.append({"panelIndex": str(i), "panelRefName": f"panel_{i}", "version": VERSION,
                       "gridData": {"x": 24 * (i % 2), "y": 15 * (i // 2), "w": 24, "h": 15, "i": str(i)},
                       "embeddableConfig": {}})
        refs.append({"name": f"panel_{i}", "type": "visualization", "id": obj["id"]})
    objects.append({
        "type": "dashboard", "id": "loopline-overview", "coreMigrationVersion": VERSION,
        "attributes": {"title": "Loopline overview", "description": "latency, confidence by version, feedback, errors",
                       "panelsJSON": json.dumps(panels), "timeRestore": True, "timeFrom": "now-24h", "timeTo": "now",
                       "refreshInterval": {"pause": False, "value": 30000}, "version": 1,
                       "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                           {"query": {"query": "", "language": "kuery"}, "filter": []})}},
        "references": refs,
    })
    objects.append({
        "type": "index-pattern", "id": LOGS_VIEW, "coreMigrationVersion": VERSION,
        "attributes": {"title": "loopline-logs-*", "name": "Loopline service logs", "timeFieldName": "@timestamp"},
        "references": [],
    })
    objects.append({
        "type": "search", "id": "loopline-logs-problems", "coreMigrationVersion": VERSION,
        "attributes": {
            "title": "Loopline: service warnings and errors", "description": "JSON logs shipped by Filebeat; "
            "trace.id is the request id, so one request's lines across services line up",
            "columns": LOG_COLUMNS, "sort": [["@timestamp", "desc"]], "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({
                "query": {"query": "log.level : (\"warning\" or \"error\" or \"critical\")", "language": "kuery"},
                "filter": [], "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"})},
        },
        "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                        "id": LOGS_VIEW}],
    })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in objects), encoding="utf-8")


if __name__ == "__main__":
    main()
