"""What every ``loopline`` subcommand shares: the error console, the common settings read with a
one-line refusal, and failing with a message and an exit code (never a traceback)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from .settings import CommonSettings

err = Console(stderr=True)


def common_settings() -> CommonSettings:
    """``CommonSettings``, or exit 2 naming the bad setting."""
    try:
        return CommonSettings()
    except ValueError as exc:
        err.print(f"[red]bad setting:[/red] {exc}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
