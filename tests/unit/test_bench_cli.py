"""`loopline bench`'s options reach the run's configuration (the run itself is replaced: a real one
takes minutes; tests/integration/test_bench_smoke.py runs one)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from harness.bench import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from harness.bench import runner

    seen: list[Any] = []

    class RecordingRun:
        def __init__(self, config: Any, progress: Any = None) -> None:
            seen.append(config)

        def run(self) -> dict[str, Any]:
            return {"started": "now", "label": "test", "duration_s": 0.0, "goals": []}

    monkeypatch.setattr(runner, "BenchRun", RecordingRun)
    return seen


def _invoke(*args: str) -> Any:
    app = typer.Typer()
    cli.register(app)
    app.command("noop")(lambda: None)  # two commands: typer then takes the command name as the first argument
    return CliRunner().invoke(app, ["bench", *args])


def test_qa_tokens_and_peers_reach_the_run(runs: list[Any]) -> None:
    result = _invoke("--tasks", "vqa,qa", "--qa-tokens", "150", "--peers", "kserve,bentoml", "--concurrency", "1,8")
    assert result.exit_code == 0, result.output
    config = runs[0]
    assert config.qa_tokens == (150,) and config.tasks == ("vqa", "qa")
    assert config.peers == ("kserve", "bentoml") and config.concurrency == (1, 8)


def test_defaults_keep_both_qa_lengths_and_every_peer(runs: list[Any]) -> None:
    assert _invoke().exit_code == 0
    assert runs[0].qa_tokens == (150, 600) and runs[0].peers == ("bentoml", "mlserver", "kserve")


@pytest.mark.parametrize("args, message", [(("--qa-tokens", "0"), "QA context lengths must be positive integers"),
                                           (("--qa-tokens", "many"), "expected comma-separated integers"),
                                           (("--peers", "triton"), "--peers expects a subset")])
def test_bad_values_are_refused_before_any_run(runs: list[Any], args: tuple[str, ...], message: str) -> None:
    result = _invoke(*args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert runs == []
