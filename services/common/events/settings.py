"""Event-store settings (``LOOPLINE_EVENTS_*``): one class for every service that reads or writes events.

The gateway writes inference events and feedback; the watchdog reads the summary; the
fine-tune service reads feedback corrections and records job events. They must all talk to
the same store, so they all read these variables (one ConfigMap entry configures them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EventsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_EVENTS_", extra="ignore")

    store: Literal["sqlite", "elasticsearch"] = Field(
        "sqlite", description="where events and feedback live: SQLite under state_dir, or Elasticsearch")
    elasticsearch_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch endpoint")
    elasticsearch_username: str | None = Field(None, description="basic-auth user (from a Secret)")
    elasticsearch_password: SecretStr | None = Field(
        None, description="basic-auth password (from a Secret; never logged)")
    elasticsearch_index: str = Field(
        "loopline-events", min_length=1, description="data stream name; feedback goes to <name>-feedback")

    sqlite_path: Path | None = Field(None, description="SQLite store file (default <state_dir>/events.db)")
    spool_max_events: int = Field(
        100_000, ge=100, description="inference events kept locally while the store is down; past it the oldest "
                                     "are dropped and counted (feedback is never dropped)")
    retry_s: float = Field(2.0, gt=0, le=300, description="how often an unreachable store is tried again")

    def sqlite_file(self, state_dir: Path) -> Path:
        return self.sqlite_path or Path(state_dir) / "events.db"

    def spool_folder(self, state_dir: Path) -> Path:
        return Path(state_dir) / "spool"
