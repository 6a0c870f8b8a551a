"""The one opener of the configured event store (gateway, fine-tune and watchdog all use it)."""

from __future__ import annotations

from pathlib import Path

from .base import EventStore
from .settings import EventsSettings


def open_event_store(settings: EventsSettings, state_dir: Path) -> EventStore:
    """The configured event store: the one opener gateway, fine-tune and watchdog share."""
    if settings.store == "sqlite":
        from .sqlite import SqliteEventStore

        return SqliteEventStore(settings.sqlite_path(state_dir))
    from .elastic import ElasticEventStore

    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None
    return ElasticEventStore(url=settings.elasticsearch_url, index=settings.elasticsearch_index,
                             username=settings.elasticsearch_username, password=password)
