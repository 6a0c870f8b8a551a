"""The one opener of the configured event store (gateway, fine-tune and watchdog all use it)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from .base import EventStore
from .resilient import ResilientEventStore
from .settings import EventsSettings
from .spool import Spool, orphans


def open_backend(settings: EventsSettings, state_dir: Path) -> EventStore:
    """The store itself; raises when it cannot be reached or set up."""
    if settings.store == "sqlite":
        from .sqlite import SqliteEventStore

        return SqliteEventStore(settings.sqlite_file(state_dir))
    from .elastic import ElasticEventStore

    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None
    return ElasticEventStore(url=settings.elasticsearch_url, index=settings.elasticsearch_index,
                             username=settings.elasticsearch_username, password=password)


def open_event_store(settings: EventsSettings, state_dir: Path, service: str = "gateway") -> ResilientEventStore:
    """The configured store behind the local spool: returns at once, whether or not the store answers.

    Each process spools into its own file (replicas and restarts may share the state volume);
    files left by dead processes of the same service are adopted and forwarded."""
    # never a password in a log line: drop any user:password@ from the URL
    where = (settings.elasticsearch_url.split("//", 1)[-1].rsplit("@", 1)[-1] if settings.store == "elasticsearch"
             else str(settings.sqlite_file(state_dir)))
    folder = settings.spool_folder(state_dir)
    # a spool belongs to one store: only a process writing to the same store may adopt it
    target = hashlib.sha256(f"{settings.store}|{where}|{settings.elasticsearch_index}".encode()).hexdigest()[:10]
    prefix = f"events-{service}-{target}"
    spool = Spool(folder / f"{prefix}-{socket.gethostname()}-{os.getpid()}.db", settings.spool_max_events)
    return ResilientEventStore(
        lambda: open_backend(settings, state_dir), spool, retry_s=settings.retry_s,
        description=f"event store ({settings.store} at {where})",
        find_orphans=lambda: orphans(folder, f"{prefix}-*.db", settings.spool_max_events, spool.path))
