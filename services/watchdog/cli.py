"""``loopline watchdog``: run the quality watchdog (``--once`` for one pass)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def watchdog(once: Annotated[bool, typer.Option("--once", help="one pass, print the decisions, exit")] = False,
                 dry_run: Annotated[bool, typer.Option("--dry-run", help="decide but trigger nothing")] = False) -> None:
        """Watch live quality per model and trigger retraining when it falls below policy."""
        import os

        from services.common.logs import configure_logging
        from services.common.settings import CommonSettings

        from .app import build_watchdog
        from .settings import WatchdogSettings

        if dry_run:
            os.environ["LOOPLINE_WATCHDOG_TRIGGER"] = "dry-run"
        common = CommonSettings()
        if not once:
            import uvicorn

            from .app import create_app

            uvicorn.run(create_app(), host=common.host, port=common.watchdog_port, log_config=None, access_log=False)
            return
        configure_logging("watchdog", common.log_level, common.log_file,
                          max_bytes=common.log_max_bytes, backups=common.log_backups)
        dog = build_watchdog(common, WatchdogSettings())
        try:
            decisions = dog.run_once()
        finally:
            dog.store.close()
        typer.echo(json.dumps(decisions, indent=2, default=str))
