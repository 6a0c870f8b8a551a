"""Stand-in HTTP servers for protocols with no local implementation (Elasticsearch, Jenkins).

They implement just enough of the documented REST API and record every request so tests
can check what the official clients sent, and refuse what the real server refuses (an
Elasticsearch 8.x answers a client that asks for ``compatible-with=9`` with a 400).

Standard library only: the compose stack runs the Elasticsearch stand-in as a container
where the real image cannot be pulled (docker-compose.standins.yml):
    python standins.py elasticsearch --host 0.0.0.0 --port 9200
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


@dataclass
class StandIn:
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def matching(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]


class RecordingHandler(BaseHTTPRequestHandler):
    """Shared by the stand-ins: records each request, answers JSON with fixed extra headers."""

    standin: StandIn
    extra_headers: dict[str, str] = {}
    content_type = "application/json"

    def log_message(self, *args: Any) -> None:
        pass

    def record(self) -> Recorded:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        rec = Recorded(self.command, url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()},
                       self.rfile.read(length))
        self.standin.requests.append(rec)
        return rec

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in {**self.extra_headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler_factory: Any, port: int = 0, host: str = "127.0.0.1") -> StandIn:
    """Start a stand-in on ``host`` (``port`` 0: any free port; a fixed one to restart it where it was)."""
    standin = StandIn(server=None)  # type: ignore[arg-type]
    handler = handler_factory(standin)
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), handler)
    standin.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return standin


def _get(doc: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    if not query or "match_all" in query:
        return True
    if "bool" in query:
        return all(_matches(doc, q) for q in query["bool"].get("filter", []))
    if "term" in query:
        (fld, value), = query["term"].items()
        return _get(doc, fld) == value
    if "exists" in query:
        return _get(doc, query["exists"]["field"]) is not None
    if "range" in query:
        (fld, cond), = query["range"].items()
        value = _get(doc, fld)
        if value is None:
            return False
        return all((op == "gte" and value >= bound) or (op == "lt" and value < bound) or (op == "gt" and value > bound)
                   or (op == "lte" and value <= bound) for op, bound in cond.items())
    raise AssertionError(f"stand-in does not know query {query}")


ES_VERSIONS = {8: "8.15.3", 9: "9.1.0"}
# index privileges that imply another (Elasticsearch's privilege hierarchy, the part used here)
IMPLIED = {"create_doc": {"create_doc", "create", "index", "write", "all"}, "index": {"index", "write", "all"},
           "read": {"read", "all"}, "auto_configure": {"auto_configure", "create_index", "manage", "all"},
           "view_index_metadata": {"view_index_metadata", "manage", "all"}}
CLUSTER_IMPLIED = {"monitor": {"monitor", "manage", "all"}, "manage_ilm": {"manage_ilm", "manage", "all"},
                   "read_ilm": {"read_ilm", "manage_ilm", "manage", "all"},
                   "manage_index_templates": {"manage_index_templates", "manage", "all"},
                   "manage_security": {"manage_security", "all"}}


def _index_matches(patterns: list[str], index: str) -> bool:
    return any(re.fullmatch(re.escape(p).replace(r"\*", ".*"), index) for p in patterns)


class Security:
    """Users and roles, checked like Elasticsearch's security: 401 without valid credentials,
    403 for an action the user's role lacks. ``roles`` are role bodies as the security API takes
    them (``{"cluster": [...], "indices": [{"names": [...], "privileges": [...]}]}``)."""

    def __init__(self, users: dict[str, tuple[str, dict[str, Any]]]) -> None:
        self.users = users

    def user_of(self, headers: dict[str, str]) -> str | None:
        import base64
        import binascii

        auth = headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        known = self.users.get(name)
        return name if known and known[0] == password else None

    def cluster_ok(self, user: str, privilege: str) -> bool:
        return bool(set(self.users[user][1].get("cluster", [])) & CLUSTER_IMPLIED[privilege])

    def index_ok(self, user: str, index: str, privilege: str) -> bool:
        return any(_index_matches(list(grant["names"]), index) and set(grant["privileges"]) & IMPLIED[privilege]
                   for grant in self.users[user][1].get("indices", []))


def unauthenticated() -> dict[str, Any]:
    cause = {"type": "security_exception", "reason": "missing authentication credentials for REST request",
             "header": {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'}}
    return {"error": {"root_cause": [cause], **cause}, "status": 401}


def forbidden(action: str, user: str, what: str = "") -> dict[str, Any]:
    cause = {"type": "security_exception",
             "reason": f"action [{action}] is unauthorized for user [{user}] with effective roles [{user}]{what}"}
    return {"error": {"root_cause": [cause], **cause}, "status": 403}
COMPAT = re.compile(r"compatible-with=(\d+)")


def compat_error(headers: dict[str, str], major: int) -> dict[str, Any] | None:
    """What Elasticsearch ``major`` answers to compatibility headers it cannot serve.

    A server accepts ``compatible-with`` equal to its own major or the one before; the 9.x
    Python client sends ``compatible-with=9``, which an 8.x server refuses.
    """
    for name in ("accept", "content-type"):
        found = COMPAT.search(headers.get(name, ""))
        if found and int(found.group(1)) not in (major, major - 1):
            reason = (f"{'Accept' if name == 'accept' else 'Content-Type'} version must be either version "
                      f"{major} or {major - 1}, but found {found.group(1)}. "
                      f"{'Accept' if name == 'accept' else 'Content-Type'}={headers[name]}")
            cause = {"type": "media_type_header_exception", "reason": "Invalid media-type value on headers [Accept, Content-Type]"}
            return {"error": {"root_cause": [cause], **cause, "caused_by": {"type": "status_exception", "reason": reason}},
                    "status": 400}
    return None


def elasticsearch_handler(fail_first_bulk: bool = False, canned_aggs: dict[str, Any] | None = None,
                          indices: dict[str, list[dict[str, Any]]] | None = None, major: int = 8,
                          security: Security | None = None) -> Any:
    """Elasticsearch REST subset (default: an 8.15 server): ILM, index templates, _bulk, index, _search.

    Requests with compatibility headers for another major get the real 400
    ``media_type_header_exception``. ``indices`` (index -> documents) outlives the server when
    passed in, so a test can stop and restart "Elasticsearch" with its data; documents with an
    id are kept once (a second ``create`` of the same id answers 409, as Elasticsearch does).
    With ``security``, every request needs Basic credentials of a known user (401) and a role
    that grants the action (403), as a secured cluster answers."""

    def factory(standin: StandIn) -> type[BaseHTTPRequestHandler]:
        nonlocal indices
        if indices is None:
            indices = {}
        state = {"bulk_failures": 1 if fail_first_bulk else 0}

        class Handler(RecordingHandler):
            extra_headers = {"X-Elastic-Product": "Elasticsearch"}  # the client's product check
            content_type = f"application/vnd.elasticsearch+json;compatible-with={major}"
            user = ""

            def _handle(self) -> None:
                rec = self.record()
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                refused = compat_error(rec.headers, major)
                if refused:
                    return self._send(400, refused)
                denied = self._authorize(security, rec, parts, indices) if security else None
                if denied:
                    status, body = denied
                    return self._send(status, body, {"WWW-Authenticate": 'Basic realm="security"'} if status == 401 else None)
                if url.path == "/":
                    return self._send(200, {"version": {"number": ES_VERSIONS.get(major, f"{major}.0.0")},
                                            "tagline": "You Know, for Search"})
                if parts[:2] == ["_ilm", "policy"] or parts[0] == "_index_template":
                    return self._send(200, {"acknowledged": True})
                if parts[0] == "_security" and self.command in ("PUT", "POST"):  # roles and users
                    return self._send(200, {"created": True})
                if parts == ["_bulk"]:
                    if state["bulk_failures"] > 0:
                        state["bulk_failures"] -= 1
                        return self._send(503, {"error": "unavailable"})
                    lines = rec.ndjson()
                    items = []
                    for action, source in zip(lines[::2], lines[1::2], strict=True):
                        (op, meta), = action.items()
                        refused_item = self._item_refused(security, op, meta["_index"], indices) if security else None
                        if refused_item:
                            items.append({op: {"_index": meta["_index"], "status": 403, "error": refused_item["error"]}})
                            continue
                        docs = indices.setdefault(meta["_index"], [])
                        if "_id" in meta and any(d.get("_id") == meta["_id"] for d in docs):
                            items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 409, "error": {
                                "type": "version_conflict_engine_exception",
                                "reason": f"[{meta['_id']}]: version conflict, document already exists"}}})
                            continue
                        docs.append({**source, **({"_id": meta["_id"]} if "_id" in meta else {})})
                        items.append({op: {"_index": meta["_index"], "status": 201, "result": "created"}})
                    errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
                    return self._send(200, {"took": 1, "errors": errors, "items": items})
                if len(parts) == 3 and parts[1] == "_doc" and self.command in ("PUT", "POST"):
                    docs = indices.setdefault(parts[0], [])
                    docs[:] = [d for d in docs if d.get("_id") != parts[2]]  # index by id replaces
                    docs.append({**rec.json(), "_id": parts[2]})
                    return self._send(201, {"_index": parts[0], "_id": parts[2], "result": "created",
                                            "_shards": {"total": 1, "successful": 1, "failed": 0}})
                if len(parts) == 2 and parts[1] == "_search":
                    body = rec.json() if rec.body else {}
                    docs = [d for d in indices.get(parts[0], []) if _matches(d, body.get("query", {}))]
                    resp: dict[str, Any] = {"took": 1, "timed_out": False,
                                            "hits": {"total": {"value": len(docs), "relation": "eq"},
                                                     "hits": [{"_index": parts[0], "_source": {k: v for k, v in d.items() if k != "_id"}}
                                                              for d in docs[: body.get("size", 10)]]}}
                    if "aggs" in body or "aggregations" in body:
                        # no canned answer: what Elasticsearch answers when nothing matched (empty buckets)
                        resp["aggregations"] = (canned_aggs or {}).get(parts[0]) or {
                            name: {"buckets": []} for name in body.get("aggs", body.get("aggregations", {}))}
                    return self._send(200, resp)
                return self._send(404, {"error": {"type": "stand_in_unknown", "reason": url.path}})

            def _item_refused(self, sec: Security, op: str, index: str,
                              known: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
                need = "create_doc" if op == "create" else "index"
                if sec.index_ok(self.user, index, need) and (index in known or sec.index_ok(self.user, index,
                                                                                            "auto_configure")):
                    return None
                return forbidden(f"indices:data/write/{op}", self.user, f" on indices [{index}]")

            def _authorize(self, sec: Security, rec: Recorded, parts: list[str],
                           known: dict[str, list[dict[str, Any]]]) -> tuple[int, dict[str, Any]] | None:
                user = sec.user_of(rec.headers)
                if user is None:
                    return 401, unauthenticated()
                if not parts:
                    ok, action = sec.cluster_ok(user, "monitor"), "cluster:monitor/main"
                elif parts[:2] == ["_ilm", "policy"]:
                    need = "manage_ilm" if self.command == "PUT" else "read_ilm"
                    ok, action = sec.cluster_ok(user, need), f"cluster:admin/ilm/{'put' if need == 'manage_ilm' else 'get'}"
                elif parts[0] == "_index_template":
                    ok = self.command in ("GET", "HEAD") and sec.cluster_ok(user, "monitor") \
                        or sec.cluster_ok(user, "manage_index_templates")
                    action = "indices:admin/index_template/put"
                elif parts[0] == "_security":
                    ok, action = sec.cluster_ok(user, "manage_security"), "cluster:admin/xpack/security/put"
                elif parts == ["_bulk"]:
                    self.user = user  # each item is authorised on its own: a refused one is a 403 item
                    return None
                elif len(parts) >= 2 and parts[1] == "_doc":
                    ok = sec.index_ok(user, parts[0], "index") and (
                        parts[0] in known or sec.index_ok(user, parts[0], "auto_configure"))
                    action = "indices:data/write/index"
                elif len(parts) == 2 and parts[1] == "_search":
                    ok, action = sec.index_ok(user, parts[0], "read"), "indices:data/read/search"
                else:
                    ok, action = True, ""
                return None if ok else (403, forbidden(action, user))

            do_GET = do_PUT = do_POST = do_HEAD = _handle

        Handler.standin = standin
        return Handler

    return factory


def jenkins_handler(mode: str = "ok", user: str = "watchdog", token: str = "jenkins-api-token") -> Any:
    """Jenkins REST subset: crumb issuer and buildWithParameters, with basic auth."""
    import base64
    import time

    expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    def factory(standin: StandIn) -> type[BaseHTTPRequestHandler]:
        class Handler(RecordingHandler):
            extra_headers = {"X-Jenkins": "2.479.1"}

            def _handle(self) -> None:
                rec = self.record()
                url = urlparse(self.path)
                if mode == "slow":
                    time.sleep(3)
                if mode == "unauthorized" or rec.headers.get("authorization") != expected:
                    return self._send(401, {"message": "Invalid password/token for user"})
                if url.path == "/crumbIssuer/api/json":
                    return self._send(200, {"crumb": "c0ffee", "crumbRequestField": "Jenkins-Crumb"})
                if url.path.endswith("/buildWithParameters") and self.command == "POST":
                    if rec.headers.get("jenkins-crumb") != "c0ffee":
                        return self._send(403, {"message": "No valid crumb was included in the request"})
                    return self._send(201, None, {"Location": f"http://127.0.0.1/queue/item/{41 + len(standin.requests)}/"})
                return self._send(404, {"message": "not found"})

            do_GET = do_POST = _handle

        Handler.standin = standin
        return Handler

    return factory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run a stand-in server in the foreground, or check one")
    parser.add_argument("kind", choices=["elasticsearch", "health"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--major", type=int, default=8, help="the Elasticsearch major to behave like")
    args = parser.parse_args(argv)
    if args.kind == "health":  # a container health check (one word per argument: podman's API splits them)
        from urllib.request import urlopen

        try:
            with urlopen(f"http://{args.host}:{args.port}/", timeout=3) as response:  # noqa: S310 - loopback
                return 0 if response.status == 200 else 1
        except OSError:
            return 1
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in a container: stop on SIGTERM
    standin = serve(elasticsearch_handler(major=args.major), port=args.port, host=args.host)
    print(f"elasticsearch {ES_VERSIONS.get(args.major)} stand-in on {standin.url}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
