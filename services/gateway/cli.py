"""``loopline keys`` (named API keys) and ``loopline feedback`` (review corrections), run where
the state lives: they read and write ``<state>`` and the event store directly."""

from __future__ import annotations

import getpass
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.common.commands import common_settings, fail

keys_app = typer.Typer(help="Named API keys (roles reviewer, admin), stored hashed.", no_args_is_help=True)
feedback_app = typer.Typer(help="Feedback corrections: who sent them, trust states, review.", no_args_is_help=True)
console = Console()


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(feedback_app, name="feedback")


def _keys() -> Any:
    from services.common.keys import KeyStore

    return KeyStore(common_settings().state)


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="who holds it, e.g. alice")],
                role: Annotated[str, typer.Option(help="reviewer | admin")] = "reviewer") -> None:
    """Create a key; it is printed once (only its SHA-256 is stored)."""
    try:
        key = _keys().create(name, role)
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(f"key for {name} ({role}); shown once, store it now:")
    print(key)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a key at once (the gateway re-reads the key file on every call)."""
    if not _keys().revoke(name):
        fail(f"no live key named {name!r}")
    console.print(f"revoked {name}")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys with role, prefix, created and revoked times (never the key)."""
    rows = _keys().list()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "role", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(r["name"], r["role"], r.get("prefix", ""), _when(r.get("created_at")), _when(r.get("revoked_at")))
    console.print(table)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _store() -> Any:
    from services.common.events import EventsSettings, open_event_store

    return open_event_store(EventsSettings(), common_settings().state, service="cli")


@feedback_app.command("list")
def feedback_list(state: Annotated[str | None, typer.Option(help="pending | accepted | rejected")] = None,
                  model: Annotated[str | None, typer.Option()] = None,
                  as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Corrections grouped by model, served answer and correction, with senders and states."""
    from services.common.trust import groups, states_for

    store = _store()
    try:
        rows, states = states_for(store, common_settings().feedback_quorum, model=model, limit=100_000)
        found = [g for g in groups(rows, states) if state is None or g["states"].get(state)]
    finally:
        store.close()
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return
    table = Table("model", "served", "correction", "count", "senders", "pending", "accepted", "rejected")
    for g in found:
        table.add_row(str(g["model"]), str(g["served"]), str(g["correction"]), str(g["count"]),
                      str(g["distinct_senders"]), *(str(g["states"][s]) for s in ("pending", "accepted", "rejected")))
    console.print(table)


def _review(action: str, ids: list[str], group: str | None, sender: str | None, reason: str | None) -> dict[str, Any]:
    from services.common.registry import Registry
    from services.common.trust import groups, record_review, reject_sender, states_for, versions_trained_on

    if bool(ids) + (group is not None) + (sender is not None) != 1:
        fail("name exactly one of --id (repeatable), --group or --sender", 2)
    common = common_settings()
    by = f"cli:{getpass.getuser()}"
    store = _store()
    try:
        registry = Registry(common.registry)
        if sender is not None:
            return reject_sender(store, registry, sender, by, reason)
        rows, states = states_for(store, common.feedback_quorum, limit=100_000)
        if group is not None:
            ids = [fid for g in groups(rows, states) if g["group"] == group for fid in g["feedback_ids"]]
        ids = [fid for fid in ids if fid in states]
        if not ids:
            fail("no correction matches")
        doc = record_review(store, action, ids, by, reason)
        return {"action": action, "count": len(ids), "review": doc,
                "versions": versions_trained_on(registry, ids) if action == "reject" else []}
    finally:
        store.close()


@feedback_app.command("accept")
def feedback_accept(ids: Annotated[list[str] | None, typer.Option("--id", help="a feedback id (repeatable)")] = None,
                    group: Annotated[str | None, typer.Option(help="a whole group (see `feedback list --json`)")] = None,
                    reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Accept corrections: they train the next use_feedback job (recorded in the audit trail)."""
    out = _review("accept", ids or [], group, None, reason)
    console.print(f"accepted {out['count']} correction(s)")


@feedback_app.command("reject")
def feedback_reject(ids: Annotated[list[str] | None, typer.Option("--id", help="a feedback id (repeatable)")] = None,
                    group: Annotated[str | None, typer.Option(help="a whole group")] = None,
                    sender: Annotated[str | None, typer.Option(help="everything one sender sent, e.g. client:abc")] = None,
                    reason: Annotated[str | None, typer.Option()] = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Reject corrections (they never train again) and list the versions already trained on them."""
    out = _review("reject", ids or [], group, sender, reason)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return
    count = out.get("count", out.get("rejected", 0))
    console.print(f"rejected {count} correction(s){' from ' + sender if sender else ''}")
    if not out["versions"]:
        console.print("no version was trained on them")
    for v in out["versions"]:
        on = f" ({', '.join(v['aliases'])})" if v["aliases"] else ""
        console.print(f"trained on them: {v['model']} v{v['version']}{on}: {v['corrections']} correction(s); "
                      "roll back or retrain without them")
