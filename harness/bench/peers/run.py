"""The peers' part of a bench run: build their environments, start them beside Loopline's
services, and check their answers against Loopline's (a peer that answers differently is
flagged in the table, never silently counted as faster)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .envs import ensure_env
from .servers import PeerConfig, PeerServer, start_peer

log = logging.getLogger("loopline.bench")

# the tasks the peers serve (style has no peer: docs/performance.md, "Peers")
PEER_TASKS = ("vqa", "qa")


def start_peers(peers: tuple[str, ...], task: str, cache_dir: Path, model_dir: Path, work_dir: Path, logs: Path,
                base_env: dict[str, str], threads: int, notes: list[str], progress: Callable[[str], None],
                config: PeerConfig | None = None, overlay: bool = False) -> dict[str, PeerServer]:
    """Every peer that builds and becomes ready serving ``task``; a peer that fails is a note, not a lost run."""
    started: dict[str, PeerServer] = {}
    for peer in peers:
        try:
            python = ensure_env(peer, cache_dir, progress, overlay=overlay)
            server = start_peer(peer, task, python, model_dir, work_dir / f"{peer}-{task}",
                                logs / f"peer-{peer}-{task}.log", base_env, threads, config)
            server.server.start()
            started[peer] = server
        except (OSError, RuntimeError, ValueError) as exc:
            notes.append(f"peer {peer} ({task}) skipped: {str(exc).splitlines()[0][:300]}")
            progress(f"peers: {peer} ({task}) skipped ({exc})")
    ready: dict[str, PeerServer] = {}
    for peer, server in started.items():
        try:
            server.server.wait_ready(server.ready_path, timeout_s=300)
            ready[peer] = server
        except (RuntimeError, TimeoutError) as exc:
            server.server.stop()
            notes.append(f"peer {peer} ({task}) did not become ready: {str(exc).splitlines()[0][:300]}")
            progress(f"peers: {peer} ({task}) not ready ({str(exc).splitlines()[0]})")
    return ready


def compare_answers(loopline_url: str, peers: dict[str, PeerServer], request: dict[str, Any]) -> dict[str, Any]:
    """Loopline's answer to ``request`` and each peer's, with whether they are the same text."""
    import json

    out: dict[str, Any] = {}
    try:
        ours = httpx.post(loopline_url, json=request, timeout=120).json().get("answer")
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"Loopline did not answer: {exc}"}
    out["loopline"] = ours
    for peer, server in peers.items():
        try:
            response = httpx.post(server.url, content=server.body(request),
                                  headers={"content-type": "application/json"}, timeout=120)
            answer = server.answer(response.content) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, IndexError, StopIteration, json.JSONDecodeError) as exc:
            log.warning("peer %s answer check failed: %s", peer, exc)
            answer = None
        out[peer] = {"answer": answer, "same_as_loopline": answer is not None and answer.strip() == (ours or "").strip()}
    return out
