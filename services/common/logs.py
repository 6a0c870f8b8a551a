"""Structured JSON logs with ECS field names, configured once per process.

The request id and the model/version travel in context variables so that every line
logged while serving a request carries them (the MLServer ``context.py`` pattern).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import io
import json
import logging
import logging.handlers
import os
import sys
import uuid
from pathlib import Path
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
model_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("model", default=None)
version_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("version", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("token", "password", "secret", "authorization", "api_key")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """Accept a caller's id if it is short and printable, else make one."""
    if value and len(value) <= 128 and all(c.isalnum() or c in "-_.:" for c in value):
        return value
    return new_request_id()


class EcsJsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "@timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            "service.name": self.service,
            "ecs.version": "8.11.0",
        }
        rid = request_id_var.get()
        if rid:
            doc["trace.id"] = rid
            doc["http.request.id"] = rid
        model, version = model_var.get(), version_var.get()
        if model:
            doc["ml.model.name"] = model
        if version is not None:
            doc["ml.model.version"] = version
        for key, value in record.__dict__.items():
            if key in _STD_ATTRS or key.startswith("_"):
                continue
            if any(word in key.lower() for word in _SECRET_WORDS):
                value = "[redacted]"
            doc[_ecs_key(key)] = value
        if record.exc_info:
            doc["error.type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def _ecs_key(key: str) -> str:
    """``event_action`` -> ``event.action``; dotted keys stay; the rest go under ``labels``."""
    if "." in key:
        return key
    if key.startswith("event_"):
        return "event." + key[len("event_"):]
    return "labels." + key


class _NeverFailingStream(io.TextIOBase):
    """stdout/stderr that swallow a broken pipe: a supervisor that died (or a closed terminal)
    must never turn the next log line or progress bar into a crashed job."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._break()

    def _break(self) -> None:
        """Point the file descriptor at /dev/null: whatever is still buffered, and the
        interpreter's last flush at exit, then go nowhere instead of failing (exit code 120)."""
        self.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        return not self.broken and self._stream.isatty()

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", "utf-8"))


def protect_std_streams() -> None:
    """Wrap sys.stdout and sys.stderr once so that writing to a broken pipe is never an error."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _NeverFailingStream):
            setattr(sys, name, _NeverFailingStream(stream))


DEFAULT_LOG_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 3


def configure_logging(service: str, level: str = "INFO", log_file: Path | None = None, *,
                      max_bytes: int = DEFAULT_LOG_MAX_BYTES, backups: int = DEFAULT_LOG_BACKUPS) -> None:
    """Install the JSON formatter on the root logger (idempotent); optionally also to a file,
    rotated at ``max_bytes`` keeping ``backups`` old files (0: never rotate), so a pod's log
    volume is bounded by (backups + 1) x max_bytes whatever the traffic."""
    protect_std_streams()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_loopline", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if max_bytes > 0:
            handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups,
                                                                 encoding="utf-8"))
        else:
            handlers.append(logging.handlers.WatchedFileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(EcsJsonFormatter(service))
        handler._loopline = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "urllib3", "elastic_transport"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
