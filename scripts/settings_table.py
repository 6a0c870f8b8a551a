"""Print the Markdown settings table for the README (every LOOPLINE_* variable)."""

from __future__ import annotations

import json
from typing import Any

from pydantic_settings import BaseSettings


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    """(env prefix, settings class) of every service; inference services from the task table."""
    from services.common.events import EventsSettings
    from services.common.settings import CommonSettings
    from services.common.tasks import TASKS, load_object
    from services.finetune.settings import FinetuneSettings
    from services.gateway.settings import GatewaySettings, family_settings_class
    from services.watchdog.settings import WatchdogSettings

    out: list[tuple[str, type[BaseSettings]]] = [("LOOPLINE_", CommonSettings), ("LOOPLINE_EVENTS_", EventsSettings),
                                                 ("LOOPLINE_GATEWAY_", GatewaySettings)]
    out += [(f"LOOPLINE_GATEWAY_{name.upper()}_", family_settings_class(task)) for name, task in TASKS.items()]
    for name, task in TASKS.items():
        out.append((f"LOOPLINE_{name.upper()}_", task.runtime_class().settings_class))
    out.append(("LOOPLINE_WATCHDOG_", WatchdogSettings))
    out.append(("LOOPLINE_FINETUNE_", FinetuneSettings))
    for name, task in TASKS.items():  # each family's own fine-tune knobs
        if task.training_settings:
            out.append((f"LOOPLINE_FINETUNE_{name.upper()}_", load_object(task.training_settings)))
    return out


def env_names() -> list[str]:
    return [prefix + name.upper() for prefix, cls in settings_classes() for name in cls.model_fields]


def _default(field: Any) -> str:
    if field.default_factory is not None:
        if "threads" in str(field.default_factory):
            return "(cores available)"
        return f"`{json.dumps(field.default_factory())}`"  # a list or a mapping, as the variable takes it (JSON)
    value = field.default
    return "(unset)" if value is None else f"`{value}`"


def main() -> None:
    print("| variable | default | meaning |\n|---|---|---|")
    for prefix, cls in settings_classes():
        for name, field in cls.model_fields.items():
            print(f"| `{prefix}{name.upper()}` | {_default(field)} | {field.description or ''} |")




def render_readme(readme: str) -> str:
    """README text with the table between the settings markers regenerated."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    start, end = "<!-- settings:start -->\n", "<!-- settings:end -->"
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + buf.getvalue() + end + tail


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if "--write-readme" in sys.argv:
        readme = Path(__file__).resolve().parent.parent / "README.md"
        readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        main()
