"""Every command line the delivery path runs exists: make targets named by the Jenkinsfiles, and
every ``loopline ...`` invocation in the make targets, compose, the Kubernetes manifests, the
Dockerfiles and the scripts parses with the real CLI (options and arguments checked by click,
nothing executed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app, register_optional_commands

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
JENKINSFILES = [ROOT / "Jenkinsfile", *sorted((ROOT / "jenkins").glob("*.Jenkinsfile"))]
# the values the Jenkins jobs pass (FineTuneModels parameters), to expand the make targets with
JOB_VARS = {"MODEL": "qa-extractive", "DATASET": "samples/qa.json", "EPOCHS": "1", "BATCH_SIZE": "8",
            "LEARNING_RATE": "0.0002", "REASON": "watchdog: mean confidence 0.41 < 0.75", "STATUS": "SUCCESS",
            "K8S_ENV": "minikube"}


def parse(argv: list[str]) -> None:
    """``loopline <argv> --help`` in-process: click resolves every subcommand and parses every option
    given (an unknown command or option fails), then --help stops it before anything runs."""
    register_optional_commands()
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"loopline {shlex.join(argv)}: {result.output[-500:]}"


def make_targets_in_jenkinsfiles() -> list[tuple[str, list[str]]]:
    found = []
    for path in JENKINSFILES:
        for match in re.finditer(r"sh\s+'make ([^']+)'", path.read_text(encoding="utf-8")):
            words = shlex.split(match.group(1).replace('"$', '"').replace("$", ""))
            target = words[0]
            assigns = [w.split("=", 1)[0] + "=" + JOB_VARS.get(w.split("=", 1)[0], "x") for w in words[1:] if "=" in w]
            found.append((target, assigns))
    return found


def dry_run(target: str, assigns: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(["make", "-n", "--no-print-directory", target, *assigns, "DRY_RUN=1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"make -n {target}: {done.stderr}"
    return done.stdout


def loopline_invocations(text: str) -> list[list[str]]:
    calls = []
    for line in text.replace("\\\n", " ").splitlines():
        match = re.search(r"(?:^|[\s/])loopline\s+(.*)$", line)
        if match and not line.lstrip().startswith("#"):
            calls.append(shlex.split(match.group(1).split("&&")[0].split("|")[0].split(";")[0]))
    return [c for c in calls if c and not c[0].startswith("-")]


def test_every_make_target_a_jenkinsfile_runs_exists_and_expands() -> None:
    targets = make_targets_in_jenkinsfiles()
    assert {"install", "train-smoke", "eval-gate", "finetune-job", "images", "push", "deploy"} <= {t for t, _ in targets}
    for target, assigns in targets:
        dry_run(target, assigns)


@pytest.mark.parametrize("target", ["train-smoke", "eval-gate", "finetune-job", "models", "up", "bench", "soak"])
def test_loopline_commands_of_make_targets_parse(target: str) -> None:
    out = dry_run(target, [f"{k}={v}" for k, v in JOB_VARS.items()])
    calls = loopline_invocations(out)
    assert calls, f"make {target} runs no loopline command"
    for argv in calls:
        parse(argv)


def test_finetune_job_uses_feedback_when_the_watchdog_asks_for_it() -> None:
    calls = loopline_invocations(dry_run("finetune-job", ["MODEL=vqa-blip", "DATASET=feedback", "REASON=drift"]))
    (argv,) = [c for c in calls if c[:2] == ["finetune", "run"]]
    parse(argv)
    assert "--feedback" in argv and "--dataset" not in argv


def _manifest_commands() -> list[list[str]]:
    commands = []
    for path in [ROOT / "docker-compose.yml", *sorted((ROOT / "k8s").rglob("*.yaml"))]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            stack = [doc]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    for key, value in node.items():
                        if key in ("command", "args") and isinstance(value, list) and value and value[0] == "loopline":
                            commands.append([str(v) for v in value[1:]])
                        else:
                            stack.append(value)
                elif isinstance(node, list):
                    stack.extend(node)
    for path in sorted((ROOT / "docker").glob("*.Dockerfile")):
        for match in re.finditer(r"^CMD (\[.*\])", path.read_text(encoding="utf-8"), re.M):
            argv = json.loads(match.group(1))
            if argv[0] == "loopline":
                commands.append(argv[1:])
    return commands


def test_loopline_commands_in_compose_manifests_and_images_parse() -> None:
    commands = _manifest_commands()
    assert any(c[:2] == ["models", "bootstrap"] for c in commands)
    assert sum(c[0] == "serve" for c in commands) >= 6
    for argv in commands:
        parse(argv)


def test_loopline_commands_in_scripts_parse() -> None:
    calls = []
    for path in sorted((ROOT / "scripts").glob("*.sh")):
        calls += loopline_invocations(path.read_text(encoding="utf-8"))
    for argv in calls:
        parse([a for a in argv if "$" not in a])


def test_a_wrong_option_or_command_is_caught() -> None:
    for argv in (["finetune", "run", "qa-extractive", "--learning-rat", "0.1"], ["finetune", "gates"],
                 ["models", "bootstrap", "--tiniest"]):
        with pytest.raises(AssertionError):
            parse(argv)


@pytest.mark.parametrize("wheel_dir", ["", "/srv/wheels"])
def test_make_install_asks_for_the_cpu_torch_build(wheel_dir: str) -> None:
    """A plain ``torch==2.13.0`` is the CUDA build on a normal machine: install takes the lock's
    +cpu build, hash-checked, from PyTorch's CPU index or from a wheel folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(["make", "-n", "-W", "pyproject.toml", "install", f"TORCH_WHEEL_DIR={wheel_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    torch_lines = [line for line in done.stdout.splitlines()
                   if "pip install" in line and ("torch" in line or "-r requirements.lock" in line)]
    assert len(torch_lines) == 1, done.stdout
    assert "--require-hashes" in torch_lines[0] and "--no-deps" in torch_lines[0]
    locked = (ROOT / "requirements.lock").read_text()
    assert "\ntorch==2.13.0+cpu \\\n    --hash=sha256:" in locked, "the lock must pin the CPU build, with its hash"
    expected = f"--find-links {wheel_dir}" if wheel_dir else "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert expected in torch_lines[0], torch_lines[0]
