"""Fake runtimes and builders shared by tests (the MLServer ``tests/fixtures.py`` idea)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from services.common.errors import Invalid
from services.common.registry import Registry, VersionRef
from tests.servers import REPO, free_port, service_env, start_service


def data_dir(root: Path, registry_template: Path, samples: Path) -> Path:
    """A stack's data folder under ``root``: the sample inputs, a copy of the tiny world registry and
    an empty state folder (the layout ``loopline up`` uses)."""
    shutil.copytree(samples, root / "samples")
    shutil.copytree(registry_template, root / "registry")
    (root / "state").mkdir()
    return root


def wait_for(fetch: Any, done: Any, timeout_s: float = 120.0) -> Any:
    """Poll ``fetch()`` until ``done(value)``, with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise TimeoutError(f"condition not met; last: {value}")


def sum_batch(key: Any, items: list[Any]) -> list[Any]:
    """Answers each item with its sum; records the batch sizes it saw."""
    SumRecorder.batches.append(len(items))
    return [{"sum": sum(i)} for i in items]


class SumRecorder:
    batches: list[int] = []


def slow_batch(delay_s: float):
    def run(key: Any, items: list[Any]) -> list[Any]:
        time.sleep(delay_s)
        return [{"echo": i} for i in items]
    return run


def error_batch(key: Any, items: list[Any]) -> list[Any]:
    raise RuntimeError("model exploded")


def per_item_error_batch(key: Any, items: list[Any]) -> list[Any]:
    return [Invalid("odd input") if i % 2 else {"ok": i} for i in items]


class Gate:
    """Blocks a batch until released: lets a test fill the queue deterministically."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def run(self, key: Any, items: list[Any]) -> list[Any]:
        self.event.wait(10)
        return [{"echo": i} for i in items]


def copy_as_new_version(registry: Registry, model: str, from_version: int = 1, seed: int | None = None) -> VersionRef:
    """A new version of ``model`` (same files, or rebuilt with another seed for torch QA)."""
    src = registry.version_dir(model, from_version)
    manifest = registry.manifest(model, from_version)

    def write(out: Path) -> None:
        if seed is not None and manifest["task"] == "qa":
            from services.qa.build import build_qa
            build_qa(out, "tiny", seed=seed)
            return
        for path in src.iterdir():
            if path.name != "manifest.json":
                shutil.copy2(path, out / path.name)

    return registry.create_version(model, task=manifest["task"], framework=manifest["framework"], write=write,
                                   lineage={"parent_version": from_version, "job": "test"})


def make_lora_adapter(registry: Registry, model: str = "qa-extractive", base_version: int = 1, seed: int = 1) -> VersionRef:
    """A real peft LoRA adapter version over ``model`` v``base_version`` (random non-zero B)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForQuestionAnswering

    base_dir = registry.version_dir(model, base_version)

    def write(out: Path) -> None:
        torch.manual_seed(seed)
        base = AutoModelForQuestionAnswering.from_pretrained(base_dir)
        peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5)  # a fresh adapter is a no-op; make this one change outputs
        peft_model.save_pretrained(out)

    return registry.create_version(model, task="qa", framework="torch", kind="lora-adapter", write=write,
                                   base={"model": model, "version": base_version},
                                   lineage={"parent_version": base_version, "job": "test"})


def inference_rows(db: Path, request_ids: list[str], columns: str = "*", timeout_s: float = 10.0) -> dict[str, tuple]:
    """Rows of the inference table for these ids, polling: the store group-commits every 20 ms."""
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(db) as conn:
            marks = ",".join("?" * len(request_ids))
            rows = {r[0]: tuple(r[1:]) for r in conn.execute(
                f"SELECT request_id, {columns} FROM inference WHERE request_id IN ({marks})", request_ids)}
        if len(rows) == len(set(request_ids)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def tiny_bench_version(root: Path, task: str) -> Path:
    """The version directory of a tiny random-weight ``task`` model (the bench's tiny build) under ``root``."""
    from harness.bench.models import MODEL_OF_TASK, ModelSizes, ensure_registry

    ensure_registry(root, ModelSizes.tiny(), (task,))
    return root / MODEL_OF_TASK[task] / "1"


def load_runtime(task: str, version_dir: Path, **settings: Any) -> Any:
    """``task``'s runtime, loaded in-process from ``version_dir`` on one thread, no warm-up; ``settings``
    override the task's settings (e.g. ``bf16="off", backend="torch"``). The caller unloads it."""
    from services.common.tasks import get_task, task_settings

    runtime = get_task(task).runtime_class()(task_settings(task, warmup=False, num_threads=1, **settings), Path("."))
    runtime.load(version_dir, runtime.read_manifest(version_dir))
    return runtime


# -- a fourth model family as a plugin (tests/plugins/loopline-echo-family) ----------------------
PLUGIN = REPO / "tests" / "plugins" / "loopline-echo-family"
ADMIN_TOKEN = "plugin-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class EchoStack:
    """The unchanged gateway, echo service and fine-tune service, the plugin on their path."""

    def __init__(self, data: Path, logs: Path, site: Path) -> None:
        self.data, self.logs = data, logs
        self.env = {"PYTHONPATH": str(site), "LOOPLINE_ADMIN_TOKEN": ADMIN_TOKEN,
                    "LOOPLINE_ECHO_PORT": str(free_port()), "LOOPLINE_FINETUNE_PORT": str(free_port()),
                    "LOOPLINE_ECHO_RELOAD_INTERVAL_S": "0.2", "LOOPLINE_FINETUNE_NUM_THREADS": "1"}
        self.services: list[Any] = []
        self.echo = self._start("echo", self.env["LOOPLINE_ECHO_PORT"])
        self.finetune = self._start("finetune", self.env["LOOPLINE_FINETUNE_PORT"])
        self.gateway = self._start("gateway")

    def _start(self, name: str, port: str | None = None) -> Any:
        svc = start_service(name, self.data, self.logs, int(port) if port else None, **self.env)
        self.services.append(svc)
        return svc.wait_ready(120)

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop()


def start_echo_stack(tmp_path_factory: Any) -> EchoStack:
    """Install the echo plugin family as its own distribution, build its tiny model and start the
    unchanged gateway, echo service and fine-tune service with it on the path."""
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("plugin") / "src"
    shutil.copytree(PLUGIN, source)  # the build writes beside its sources: not into the checkout
    # a real install of a separate distribution: its entry point lands in site/*.dist-info
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    assert list(site.glob("loopline_echo_family-*.dist-info/entry_points.txt"))
    data = tmp_path_factory.mktemp("echo-data")
    (data / "state").mkdir()
    built = subprocess.run([sys.executable, "-m", "services.cli", "models", "bootstrap", "--tiny", "--only", "echo-tiny"],
                           cwd=REPO, env=service_env(data, PYTHONPATH=str(site)), capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    return EchoStack(data, tmp_path_factory.mktemp("echo-logs"), site)
