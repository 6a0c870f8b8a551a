"""Start a peer server from its environment and speak its protocol.

Every peer serves the same model directory with the same decoder (``qa_core.py`` for QA,
``vqa_core.py`` for VQA); what
differs is the server: its HTTP stack, its protocol, its batching and its worker model.
``PeerConfig`` holds the knobs each peer's docs recommend for CPU throughput (see each
server module's docstring and docs/performance.md, "Peers").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..load import json_body
from ..procs import ServerProcess, free_port

HERE = Path(__file__).parent


@dataclass(frozen=True)
class PeerConfig:
    workers: int = 1            # processes running the model; each gets threads // workers torch threads
    max_batch_size: int = 8     # as Loopline's QA batcher
    max_batch_time_s: float = 0.01  # MLServer's window (its docs leave the value to experiment)
    max_latency_ms: int = 60_000  # BentoML's latency budget: requests past it are rejected, not batched longer


# the fields of Loopline's request body that each task's peers receive
FIELDS = {"qa": ("question", "context"), "vqa": ("question", "image_b64")}


@dataclass
class PeerServer:
    peer: str
    task: str
    server: ServerProcess
    infer_path: str
    ready_path: str

    @property
    def url(self) -> str:
        return self.server.url + self.infer_path

    def body(self, request: dict[str, Any]) -> bytes:
        """Loopline's request body (QA or VQA) in this peer's protocol."""
        item = {name: request[name] for name in FIELDS[self.task]}
        if self.peer == "bentoml":
            return json_body({"items": [item]})
        if self.peer == "mlserver":
            from .mlserver_runtime import infer_body
            return json_body(infer_body(self.task, item))
        return json_body({"instances": [item]})

    def batches(self) -> tuple[float, float, float]:
        """Sum of batch sizes, number of batches and model seconds so far, from the lines the peer's
        decoder writes to its log (batch_log.py): what Loopline's cells read from its metrics."""
        from .batch_log import read_batches

        try:
            return read_batches(self.server.log_path.read_text(errors="replace"))
        except OSError:
            return 0.0, 0.0, 0.0

    def answer(self, payload: bytes) -> str:
        data = json.loads(payload)
        if self.peer == "bentoml":
            return str(data[0]["answer"])
        if self.peer == "mlserver":
            out = next(o for o in data["outputs"] if o["name"] == "answer")
            return str(out["data"][0])
        return str(data["predictions"][0]["answer"])


def start_peer(peer: str, task: str, python: Path, model_dir: Path, work_dir: Path, log_path: Path, base_env: dict[str, str],
               threads: int, config: PeerConfig | None = None) -> PeerServer:
    """Launch ``peer`` serving ``task`` (not yet ready: call ``server.wait_ready(peer.ready_path)``)."""
    if task not in FIELDS:
        raise ValueError(f"the peers serve {', '.join(FIELDS)}, not {task!r}")
    config = config or PeerConfig()
    env = {k: v for k, v in base_env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1", "PEER_MODEL_DIR": str(model_dir.resolve()),
                "PEER_NUM_THREADS": str(max(1, threads // config.workers)), "PEER_WORKERS": str(config.workers),
                "PEER_MAX_BATCH_SIZE": str(config.max_batch_size), "PEER_MAX_LATENCY_MS": str(config.max_latency_ms),
                "OMP_NUM_THREADS": str(max(1, threads // config.workers)), "HF_HUB_OFFLINE": "1",
                "BENTOML_HOME": str((work_dir / "bentoml-home").resolve()), "BENTOML_DO_NOT_TRACK": "True"})
    bindir = python.parent
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    if peer == "bentoml":
        service = {"qa": "QaService", "vqa": "VqaService"}[task]
        argv = [str(bindir / "bentoml"), "serve", f"bentoml_service:{service}", "--host", "127.0.0.1",
                "--port", "{port}", "--working-dir", str(HERE)]
        return PeerServer(peer, task, ServerProcess(peer, argv, env, log_path), "/predict", "/readyz")
    if peer == "mlserver":
        from .mlserver_runtime import write_config
        folder = (work_dir / "mlserver").resolve()
        server = ServerProcess(peer, [], env, log_path)
        write_config(folder, task, model_dir.resolve(), server.port, free_port(), free_port(), config.workers,
                     config.max_batch_size, config.max_batch_time_s)
        server.argv = [str(bindir / "mlserver"), "start", str(folder)]
        return PeerServer(peer, task, server, f"/v2/models/{task}/infer", f"/v2/models/{task}/ready")
    if peer == "kserve":
        argv = [str(python), str(HERE / "kserve_server.py"), "--model_dir", str(model_dir.resolve()),
                "--task", task, "--model_name", task, "--http_port", "{port}", "--workers", str(config.workers),
                "--enable_grpc", "false"]
        return PeerServer(peer, task, ServerProcess(peer, argv, env, log_path), f"/v1/models/{task}:predict",
                          f"/v1/models/{task}")
    raise ValueError(f"unknown peer {peer!r}")
