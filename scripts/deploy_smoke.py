#!/usr/bin/env python3
"""Post-deploy smoke test: the gateway is ready and answers one request per task.

    python scripts/deploy_smoke.py http://loopline.local            # a deployed stack
    python scripts/deploy_smoke.py --start-local http://127.0.0.1:8000  # starts `loopline up` first

Images are sent inline (image_b64) so the check does not depend on files on the
server's data volume. Exit 0 when every check passes; each failure is printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"


def wait_ready(client: httpx.Client, deadline: float) -> None:
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = client.get("/readyz", params={"all": "true"})
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.TransportError as exc:
            last = str(exc)
        time.sleep(2)
    raise SystemExit(f"gateway not ready before the deadline: {last}")


def checks(style: str) -> list[tuple[str, str, dict, str]]:
    image = base64.b64encode((SAMPLES / "images" / "red_square.png").read_bytes()).decode()
    content = base64.b64encode((SAMPLES / "content" / "content_0.png").read_bytes()).decode()
    return [
        ("qa", "/v1/qa", {"question": "What colour is the square?", "context": "The square on the table is red."}, "answer"),
        ("vqa", "/v1/vqa", {"image_b64": image, "question": "What colour is the shape?"}, "answer"),
        ("style", "/v1/style", {"image_b64": content, "style": style}, "image_b64"),
    ]


def run_checks(client: httpx.Client, style: str) -> list[str]:
    failures = []
    for task, path, body, key in checks(style):
        try:
            response = client.post(path, json=body)
        except httpx.TransportError as exc:
            failures.append(f"{task}: {exc}")
            continue
        ok = response.status_code == 200 and key in response.json()
        print(f"{'ok  ' if ok else 'FAIL'} {task}: HTTP {response.status_code} in {response.elapsed.total_seconds():.2f}s")
        if not ok:
            failures.append(f"{task}: HTTP {response.status_code}: {response.text[:300]}")
    return failures


def start_local(url: str) -> subprocess.Popen[bytes]:
    port = httpx.URL(url).port or 8000
    env = {**os.environ, "LOOPLINE_GATEWAY_PORT": str(port)}
    loopline = Path(sys.executable).with_name("loopline")
    return subprocess.Popen([str(loopline), "up"], env=env, cwd=REPO, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--start-local", action="store_true", help="start `loopline up` and stop it afterwards")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("SMOKE_TIMEOUT_S", "300")))
    parser.add_argument("--host", default=os.environ.get("SMOKE_HOST"),
                        help="Host header, to reach an Ingress by IP (e.g. loopline.local)")
    parser.add_argument("--style", default=os.environ.get("SMOKE_STYLE", "mosaic"))
    args = parser.parse_args(argv)

    stack = start_local(args.url) if args.start_local else None
    try:
        headers = {"Host": args.host} if args.host else {}
        with httpx.Client(base_url=args.url.rstrip("/"), timeout=120, headers=headers) as client:
            wait_ready(client, time.monotonic() + args.timeout)
            print(f"ok   {args.url}/readyz")
            failures = run_checks(client, args.style)
    finally:
        if stack is not None:
            os.killpg(stack.pid, signal.SIGTERM)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
