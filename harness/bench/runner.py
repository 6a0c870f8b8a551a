"""One benchmark run: start the servers, drive every cell, measure the limits, write the report.

Cells run one after another (never two loads at once) against servers that all stay up
for the whole run, so every ratio in the report compares figures taken minutes apart on
the same, equally noisy machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.settings import default_threads
from services.common.tasks import TASKS
from services.ops.entrypoints import importable

from .load import closed_loop, open_loop
from .models import MODEL_OF_TASK, ModelSizes, ensure_registry
from .procs import RssSampler, ServerProcess, child_env, serve_argv, uvicorn_argv
from .profile import scrape_stages, stage_means
from .workloads import Workload, qa_workloads, style_workload, vqa_workload

log = logging.getLogger("loopline.bench")

GATEWAY_ROUTE = {"vqa": "/v1/vqa", "qa": "/v1/qa", "style": "/v1/style"}
ANSWER_KEY = {"vqa": "answer", "qa": "answer", "style": "image_b64"}
# the services run with their defaults (bf16 auto, batch waits only for requests being prepared,
# QA windows of 384 tokens): what `make up` serves is what the bench measures
TUNED_ENV: dict[str, str] = {}
# `--untuned`: torch fp32 and the settings before issue 13 (a fixed 5 ms batch wait, the model's 512-token windows)
UNTUNED_ENV = {"LOOPLINE_VQA_BF16": "off", "LOOPLINE_QA_BF16": "off", "LOOPLINE_STYLE_BF16": "off",
               "LOOPLINE_VQA_BACKEND": "torch", "LOOPLINE_QA_BACKEND": "torch",
               "LOOPLINE_QA_MAX_SEQ_LEN": "512", "LOOPLINE_VQA_MAX_WAIT_MS": "5", "LOOPLINE_QA_MAX_WAIT_MS": "5"}


@dataclass
class BenchConfig:
    out_dir: Path = Path("bench/results")
    cache_dir: Path = Path("bench/results/cache")
    sizes: ModelSizes = field(default_factory=ModelSizes)
    tasks: tuple[str, ...] = tuple(TASKS)
    concurrency: tuple[int, ...] = (1, 4, 8)
    naive_concurrency: tuple[int, ...] = (1, 8)
    cell_seconds: float = 12.0
    cell_max_requests: int = 400
    requests_per_client: int = 2  # a cell always gets at least this many answers per client
    qa_tokens: tuple[int, ...] = (150, 600)
    gateway: bool = True
    naive: bool = True
    relay_seconds: float = 5.0
    efficiency: bool = True
    accuracy: bool = True
    accuracy_inputs: int = 200  # generated inputs per task for the agreement table
    anchors: bool = True  # ONNX Runtime / OpenVINO VQA, QA and style cells when installed
    open_loop: bool = True  # Poisson arrivals at 70 % of the measured capacity, per workload
    overload: bool = True  # more clients than admitted: the rejection latency
    profile: bool = False  # per-stage timings of the c=1 direct cells (harness/bench/profile.py)
    threads: int = field(default_factory=default_threads)
    service_env: dict[str, str] = field(default_factory=lambda: dict(TUNED_ENV))
    label: str = "full"
    # peer servers (harness/bench/peers/): BentoML, MLServer, KServe on the same VQA and QA models, each in its own venv
    peers: tuple[str, ...] = ()
    peer_env_dir: Path | None = None  # where the peers' venvs live (default: the cache); the test suite shares make bench's
    peer_env_overlay: bool = False  # no full peer venv yet: a small one over this environment (peers/envs.py)


@dataclass
class Servers:
    services: dict[str, ServerProcess] = field(default_factory=dict)
    naive: dict[str, ServerProcess] = field(default_factory=dict)
    gateway: ServerProcess | None = None
    gateway_note: str = ""
    peers: dict[str, Any] = field(default_factory=dict)  # peer name -> peers.servers.PeerServer, for the task running

    def all(self) -> list[ServerProcess]:
        return [*self.services.values(), *self.naive.values(), *([self.gateway] if self.gateway else []),
                *(p.server for p in self.peers.values())]


def machine_info(threads: int) -> dict[str, Any]:
    import psutil
    import torch
    import transformers

    from services.common.torch_shared import cpu_kind

    return {**cpu_kind().summary(), "logical_cpus": os.cpu_count(), "usable_cpus": default_threads(), "threads": threads,
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "platform": platform.platform(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def scrape_batches(url: str) -> tuple[float, float, float]:
    """Sum and count of ``loopline_batch_size`` and the sum of ``loopline_batch_seconds`` (time the model
    ran) over every model the service serves."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0, 0.0, 0.0
    total = count = model_s = 0.0
    for line in text.splitlines():
        if line.startswith("loopline_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("loopline_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("loopline_batch_seconds_sum"):
            model_s += float(line.rsplit(" ", 1)[1])
    return total, count, model_s


class BenchRun:
    def __init__(self, config: BenchConfig, progress: Callable[[str], None] = print) -> None:
        self.config = config
        self.progress = progress
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(config.out_dir) / f"{stamp}-{config.label}"
        self.data_dir = self.run_dir / "data"
        self.results: dict[str, Any] = {"label": config.label, "started": stamp, "config": _jsonable(asdict(config)),
                                        "cells": [], "notes": []}

    # -- orchestration ------------------------------------------------------------------
    def prepare(self, build: bool = True) -> Path:
        """The run's directories and its registry of real-size (or tiny) models: built when
        missing (``build``), else an error that says how to get one. Returns the registry."""
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.registry_dir = Path(cfg.cache_dir) / f"registry-{cfg.sizes.vqa}-{cfg.sizes.qa}-{cfg.sizes.style}"
        if build:
            ensure_registry(self.registry_dir, cfg.sizes, cfg.tasks)
        elif not self.registry_dir.exists():
            raise FileNotFoundError(f"{self.registry_dir} is missing: run `make bench` once first")
        (self.data_dir / "state").mkdir(parents=True, exist_ok=True)
        return self.registry_dir

    def run(self) -> dict[str, Any]:
        cfg = self.config
        t0 = time.perf_counter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results["machine"] = machine_info(cfg.threads)
        self.progress("measuring the matmul peak")
        from .peak import matmul_peak
        self.results["peak"] = matmul_peak(cfg.threads)
        self.progress(f"peak: {self.results['peak']}")
        self.progress(f"building/reusing models {asdict(cfg.sizes)}")
        registry_dir = self.prepare()
        servers = self.start_servers()
        try:
            self.workloads = self.make_workloads()
            for task in cfg.tasks:
                servers.peers = self.start_task_peers(task)
                try:
                    for workload in self.workloads[task]:
                        self.run_task_cells(servers, workload)
                        if cfg.open_loop:
                            self.run_open_loop(servers, workload)
                finally:
                    for peer in servers.peers.values():
                        peer.server.stop()
                    servers.peers = {}
            if cfg.overload:
                cheapest = "qa" if "qa" in cfg.tasks else cfg.tasks[0]
                self.run_overload(servers, self.workloads[cheapest][0])
        finally:
            for server in servers.all():
                server.stop()
        if cfg.gateway:
            self.run_relay()
        if cfg.efficiency:
            from .efficiency import measure_efficiency
            # the servers are stopped now: measure the peak again and keep the best of both, so a
            # burst of other work during the first measurement cannot inflate every fraction
            again = matmul_peak(cfg.threads)
            self.results["peak_measurements"] = [dict(self.results["peak"]), again]
            self.results["peak"] = {k: max(v, again[k]) for k, v in self.results["peak"].items()}
            self.progress(f"peak again: {again}; using {self.results['peak']}")
            self.progress("counting FLOPs and timing the batched model components")
            self.results["efficiency"] = measure_efficiency(registry_dir, cfg, self.workloads, self.results["peak"])
        if cfg.anchors:
            self.run_anchors(registry_dir)
        if cfg.profile:
            self.run_inside_predict(registry_dir)
        if cfg.accuracy:
            self.run_precision_cost(registry_dir)
        self.results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["duration_s"] = round(time.perf_counter() - t0, 1)
        from .report import write_report
        write_report(self.results, self.run_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.results

    def env(self, **extra: str) -> dict[str, str]:
        base = {"LOOPLINE_REGISTRY_DIR": str(self.registry_dir.resolve()),
                "LOOPLINE_STATE_DIR": str((self.data_dir / "state").resolve())}
        for task in TASKS:
            base[f"LOOPLINE_{task.upper()}_NUM_THREADS"] = str(self.config.threads)
        return child_env(self.data_dir.resolve(), {**base, **self.config.service_env, **extra})

    def start_servers(self) -> Servers:
        cfg = self.config
        logs = self.run_dir / "logs"
        servers = Servers()
        for task in cfg.tasks:
            servers.services[task] = ServerProcess(task, serve_argv(task), self.env(), logs / f"{task}.log").start()
            if cfg.naive:
                naive_env = self.env(LOOPLINE_BENCH_NAIVE_TASK=task, LOOPLINE_BENCH_NAIVE_MODEL_DIR=str(
                    (self.registry_dir / MODEL_OF_TASK[task] / "1").resolve()))
                servers.naive[task] = ServerProcess(f"naive-{task}", uvicorn_argv("harness.bench.naive:create_app"),
                                                    naive_env, logs / f"naive-{task}.log").start()
        self.progress("waiting for the services to load and warm up")
        for server in [*servers.services.values(), *servers.naive.values()]:
            server.wait_ready()
        if cfg.peers:
            self.results["peers_status"] = {}
        if cfg.gateway:
            if not importable("gateway"):
                servers.gateway_note = "skipped: services.gateway.app is not importable"
            else:
                urls = {f"LOOPLINE_{t.upper()}_URL": s.url for t, s in servers.services.items()}
                gateway = ServerProcess("gateway", serve_argv("gateway"), self.env(**urls), logs / "gateway.log")
                try:
                    servers.gateway = gateway.start().wait_ready("/healthz", timeout_s=60)
                except (RuntimeError, TimeoutError) as exc:
                    gateway.stop()
                    servers.gateway_note = f"skipped: the gateway did not start ({str(exc).splitlines()[0]})"
            if servers.gateway_note:
                self.results["notes"].append(f"gateway variant {servers.gateway_note}")
                self.progress(f"gateway {servers.gateway_note}")
        self.results["gateway_status"] = "ran" if servers.gateway else servers.gateway_note
        return servers

    def start_task_peers(self, task: str) -> dict[str, Any]:
        """The peer servers for ``task``, up only while its cells run (one task's models in memory at a time)."""
        from .peers.run import PEER_TASKS, start_peers

        cfg = self.config
        if not cfg.peers or task not in PEER_TASKS:
            return {}
        self.progress(f"peers: starting {', '.join(cfg.peers)} on {task}")
        peers = start_peers(cfg.peers, task, Path(cfg.peer_env_dir or cfg.cache_dir),
                            self.registry_dir / MODEL_OF_TASK[task] / "1", self.data_dir / "peers",
                            self.run_dir / "logs", self.env(), cfg.threads, self.results["notes"], self.progress,
                            overlay=cfg.peer_env_overlay)
        self.results["peers_status"][task] = {p: "ran" if p in peers else "skipped (see notes)" for p in cfg.peers}
        return peers

    def make_workloads(self) -> dict[str, list[Workload]]:
        out: dict[str, list[Workload]] = {}
        for task in self.config.tasks:
            if task == "vqa":
                out[task] = [vqa_workload()]
            elif task == "qa":
                from transformers import AutoTokenizer
                tokenizer = AutoTokenizer.from_pretrained(self.registry_dir / MODEL_OF_TASK["qa"] / "1")
                out[task] = qa_workloads(tokenizer, self.config.qa_tokens)
            else:
                out[task] = [style_workload()]
        return out

    # -- cells --------------------------------------------------------------------------
    def run_task_cells(self, servers: Servers, workload: Workload) -> None:
        cfg = self.config
        task = workload.task
        service = servers.services[task]
        variants: list[tuple[str, str, tuple[int, ...], ServerProcess]] = []
        if task in servers.naive:
            variants.append(("naive", servers.naive[task].url + "/v1/predict", cfg.naive_concurrency,
                             servers.naive[task]))
        variants.append(("direct", service.url + "/v1/predict", cfg.concurrency, service))
        if servers.gateway is not None:
            variants.append(("gateway", servers.gateway.url + GATEWAY_ROUTE[task], cfg.concurrency, servers.gateway))
        bodies = {variant: workload.encoded() for variant, *_ in variants}
        for peer, ps in servers.peers.items():  # the peers serving this task
            variants.append((f"peer:{peer}", ps.url, cfg.concurrency, ps.server))
            bodies[f"peer:{peer}"] = ps.body(workload.body)
        for variant, url, levels, server in variants:
            for c in levels:
                watch = {variant: server} if server is service else {variant: server, "service": service}
                if variant.startswith("peer:"):
                    watch = {variant: server}
                profile = cfg.profile and variant == "direct" and c == 1
                peer = servers.peers.get(variant.removeprefix("peer:")) if variant.startswith("peer:") else None
                row = self.cell(url, [bodies[variant]], c, service, watch, task, stages=profile,
                                batches=peer.batches if peer is not None else None)
                if profile:
                    self.results.setdefault("profile", {})[f"{task}/{workload.name}"] = {"service": row.pop("stages")}
                row.update({"task": task, "workload": workload.name, "variant": variant})
                self.results["cells"].append(row)
                self.progress(f"{task:5s} {workload.name:30s} {variant:8s} c={c}: p50 {row['p50_ms']} ms, "
                              f"p95 {row['p95_ms']} ms, {row['throughput_rps']} req/s, batch "
                              f"{row.get('mean_batch_size')}, errors {row['errors']}")
        if servers.peers:
            from .peers.run import compare_answers

            self.results.setdefault("peer_answers", {})[workload.name] = compare_answers(
                service.url + "/v1/predict", servers.peers, workload.body)

    def run_open_loop(self, servers: Servers, workload: Workload) -> None:
        """Offered load at 70 % of the capacity just measured (throughput at the top concurrency)."""
        top = max(self.config.concurrency)
        ours = next((r for r in self.results["cells"] if (r["task"], r["workload"], r["variant"], r["concurrency"])
                     == (workload.task, workload.name, "direct", top)), None)
        if not ours or not ours["throughput_rps"]:
            return
        rate = round(0.7 * ours["throughput_rps"], 3)
        seconds = max(self.config.cell_seconds, 20 / rate)  # about 20 arrivals at least
        result = asyncio.run(open_loop(servers.services[workload.task].url + "/v1/predict", [workload.encoded()],
                                       rate, seconds, expect_key=ANSWER_KEY[workload.task]))
        row = {**result.summary(), "task": workload.task, "workload": workload.name, "rate_rps": rate,
               "capacity_rps": ours["throughput_rps"]}
        self.results.setdefault("open_loop", []).append(row)
        self.progress(f"{workload.task:5s} {workload.name:30s} open loop {rate} req/s: p50 {row['p50_ms']} ms, "
                      f"p95 {row['p95_ms']} ms, errors {row['errors']}")
        for peer, ps in servers.peers.items():  # the peers serving this task
            # the same offered load as Loopline's open loop: a peer with less capacity shows it as queueing
            result = asyncio.run(open_loop(ps.url, [ps.body(workload.body)], rate, seconds, expect_key="answer"))
            row = {**result.summary(), "task": workload.task, "workload": workload.name, "rate_rps": rate,
                   "capacity_rps": ours["throughput_rps"], "variant": f"peer:{peer}"}
            self.results["open_loop"].append(row)
            self.progress(f"{workload.task:5s} {workload.name:30s} {peer} open loop {rate} req/s: p50 {row['p50_ms']} ms, "
                          f"p95 {row['p95_ms']} ms, errors {row['errors']}")

    def run_overload(self, servers: Servers, workload: Workload) -> None:
        """More clients than the service admits (queue + batch + 16): how fast the surplus hears 503."""
        from .efficiency import task_settings

        settings = task_settings(workload.task, self.config.service_env, self.config.threads)
        clients = settings.max_queue + settings.max_batch_size + 16
        service = servers.services[workload.task]
        result = asyncio.run(closed_loop(service.url + "/v1/predict", [workload.encoded()], clients,
                                         100_000, min(self.config.cell_seconds, 5.0),
                                         expect_key=ANSWER_KEY[workload.task]))
        row = result.summary()
        self.results["overload"] = {"task": workload.task, "workload": workload.name, "clients": clients,
                                    "rejected": row["rejected"], "p99_ms": row["rejection_p99_ms"],
                                    "answered": row["requests"], "answered_p50_ms": row["p50_ms"],
                                    "how": f"{clients} closed-loop clients on {workload.task} ({workload.name}); "
                                           f"the service admits {clients - 16}"}
        self.progress(f"overload: {row['rejected']} rejections, p99 {row['rejection_p99_ms']} ms")

    def cell(self, url: str, bodies: list[bytes], concurrency: int, service: ServerProcess,
             watch: dict[str, ServerProcess], task: str, max_seconds: float | None = None,
             max_requests: int | None = None, warm: int = 2, stages: bool = False,
             batches: Callable[[], tuple[float, float, float]] | None = None) -> dict[str, Any]:
        """One closed-loop cell; batch figures from ``batches`` (a peer's log) or else ``service``'s metrics."""
        cfg = self.config
        scrape = batches or (lambda: scrape_batches(service.url))
        key = ANSWER_KEY[task]
        asyncio.run(closed_loop(url, bodies, 1, warm, 120.0, expect_key=key))  # not counted: lazy init, caches
        before = scrape()
        stages_before = scrape_stages(service.url) if stages else {}
        pids = {name: s.proc.pid for name, s in watch.items() if s.proc is not None}
        with RssSampler(pids) as rss:
            result = asyncio.run(closed_loop(url, bodies, concurrency, max_requests or cfg.cell_max_requests,
                                             max_seconds or cfg.cell_seconds,
                                             min_requests=cfg.requests_per_client * concurrency, expect_key=key))
        after = scrape()
        row = result.summary()
        if stages:
            row["stages"] = stage_means(stages_before, scrape_stages(service.url), row["mean_ms"])
        batches = after[1] - before[1]
        row["mean_batch_size"] = round((after[0] - before[0]) / batches, 2) if batches > 0 else None
        # the share of the cell's wall time the model was running: what is left is serving (HTTP, decode,
        # waiting for batch-mates), where the CPU does not do the model's work
        row["model_busy"] = round((after[2] - before[2]) / row["elapsed_s"], 3) if batches > 0 and row["elapsed_s"] else None
        row["peak_rss_mb"] = {name: round(v / 2**20) for name, v in rss.peak.items()}
        return row

    def run_relay(self) -> None:
        """Gateway overhead and relay capacity against a backend that answers at once."""
        if not importable("gateway"):
            self.results["relay"] = {"status": "skipped: services.gateway.app is not importable"}
            return
        logs = self.run_dir / "logs"
        stub = ServerProcess("stub", uvicorn_argv("harness.bench.stub:create_app"), self.env(), logs / "stub.log")
        gateway = ServerProcess("gateway-relay", serve_argv("gateway"), self.env(LOOPLINE_QA_URL=stub.url),
                                logs / "gateway-relay.log")
        body = [json.dumps({"question": "what is the capital?", "context": "paris is the capital."}).encode()]
        try:
            stub.start().wait_ready("/readyz", 60)
            gateway.start().wait_ready("/healthz", 60)
            self.progress("gateway relay: overhead at c=1 and capacity at c=16 against an instant backend")
            direct = self.cell(stub.url + "/v1/predict", body, 1, stub, {"stub": stub}, "qa", max_seconds=3,
                               max_requests=3000, warm=50)
            via = self.cell(gateway.url + "/v1/qa", body, 1, stub, {"gateway": gateway}, "qa", max_seconds=3,
                            max_requests=3000, warm=50)
            capacity = self.cell(gateway.url + "/v1/qa", body, 16, stub, {"gateway": gateway}, "qa",
                                 max_seconds=self.config.relay_seconds, max_requests=100_000, warm=50)
            self.results["relay"] = {"status": "ran", "direct_c1": direct, "gateway_c1": via, "gateway_c16": capacity,
                                     "added_p50_ms": round(via["p50_ms"] - direct["p50_ms"], 3)
                                     if via["p50_ms"] is not None and direct["p50_ms"] is not None else None}
            self.progress(f"relay: added p50 {self.results['relay']['added_p50_ms']} ms, "
                          f"{capacity['throughput_rps']} req/s at c=16")
        except (RuntimeError, TimeoutError) as exc:
            self.results["relay"] = {"status": f"failed: {str(exc).splitlines()[0]}"}
        finally:
            gateway.stop()
            stub.stop()

    def run_anchors(self, registry_dir: Path) -> None:
        """ONNX Runtime and OpenVINO cells for VQA, QA and style (harness/bench/anchors.py), or why they are skipped."""
        from . import anchors
        from .efficiency import task_settings

        makers = {"vqa": anchors.vqa_anchor_cells, "qa": anchors.qa_anchor_cells, "style": anchors.style_anchor_cells}
        statuses: list[str] = []
        for task in (t for t in self.config.tasks if t in makers):
            absent = anchors.missing(task)
            if absent:
                statuses.append(f"{task} skipped: {', '.join(absent)} not installed "
                                "(pip install 'loopline[bench]'; make install does)")
                continue
            self.progress(f"anchors: {task} in ONNX Runtime and OpenVINO, in-process, batch 1 and 8")
            try:
                cells = makers[task](registry_dir / MODEL_OF_TASK[task] / "1",
                                     task_settings(task, self.config.service_env, self.config.threads),
                                     self.workloads[task], self.config.threads,
                                     seconds=min(4.0, self.config.cell_seconds),
                                     agreement_inputs=self.config.accuracy_inputs)
                self.results.setdefault("anchors", []).extend(cells)
                statuses.append(f"{task} ran")
            except Exception as exc:  # an exporter or runtime failure must not lose the whole run
                log.exception("%s anchors failed", task)
                statuses.append(f"{task} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        self.results["anchors_status"] = "; ".join(statuses) or "skipped: no task of this run has anchors"
        self.progress(f"anchors: {self.results['anchors_status']}")

    def run_inside_predict(self, registry_dir: Path) -> None:
        """The profile's in-process split of one batch-1 ``predict`` per workload."""
        from .efficiency import task_settings
        from .profile import inside_predict

        self.progress("profile: timing the parts of predict in-process")
        for task in self.config.tasks:
            settings = task_settings(task, self.config.service_env, self.config.threads)
            for workload in self.workloads[task]:
                entry = self.results.setdefault("profile", {}).setdefault(f"{task}/{workload.name}", {})
                entry["inside"] = inside_predict(task, registry_dir / MODEL_OF_TASK[task] / "1", settings, workload.body)

    def run_precision_cost(self, registry_dir: Path) -> None:
        """bf16 / int8 / mixed_bfloat16 answers against fp32 on generated in-world inputs (tiny and real-size)."""
        from .accuracy import precision_cost

        tasks = tuple(t for t in self.config.tasks if t in ("vqa", "qa", "style"))
        self.progress(f"answer agreement of the speed options on {self.config.accuracy_inputs} generated inputs per task")
        tiny = Path(self.config.cache_dir) / "registry-tiny-tiny-tiny"
        ensure_registry(tiny, ModelSizes.tiny(), tasks)
        registries = {"tiny": tiny}
        if self.config.sizes != ModelSizes.tiny():
            registries["real-size"] = registry_dir
        self.results["precision_cost"] = precision_cost(registries, self.config.accuracy_inputs, self.config.threads,
                                                        tasks)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
