"""Reliability: soak, overload, faults, fuzzing and hand-written bad input (test size)."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from services.common.events.base import percentile
from services.common.registry import Registry
from tests.fixtures import copy_as_new_version
from tests.servers import start_service

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_soak_at_test_size_loses_nothing(tiny_registry_template: Path) -> None:
    from harness.reliability.soak import run_soak

    # the session's tiny models, not a second training run of them (that was 6 of this test's 7 min)
    summary = run_soak(duration_s=20, rate=6, warmup_fraction=0.3, overload_burst_size=150,
                       registry_template=tiny_registry_template)
    assert summary["requests"] >= 100 and summary["5xx"] == 0, summary["by_status"]
    assert set(summary["by_status"]) <= {"200", "201"}, summary["by_status"]
    assert summary["events_lost"] == 0 and summary["feedback_lost"] == 0
    for name, drift in summary["rss_drift"].items():
        assert drift is not None and abs(drift) < 0.10, (name, drift)
    over = summary["overload"]
    assert over["rejected"] > 0 and not over["other"] and over["retry_after_on_every_rejection"], over
    assert over["recovered_after_s"] is not None


def test_overload_rejects_quickly_with_retry_after_and_recovers(module_data: Path, log_dir: Path) -> None:
    # the QA service on one thread: its work must not starve the gateway and this test's clients of
    # the machine's second core, or the measured rejection time is CPU scheduling, not admission
    # (two CI runs failed at p50 0.54 s with the QA service on both cores)
    qa = start_service("qa", module_data, log_dir, LOOPLINE_QA_MAX_BATCH_SIZE="1", LOOPLINE_QA_MAX_QUEUE="2",
                       LOOPLINE_QA_MAX_WAIT_MS="0", LOOPLINE_QA_NUM_THREADS="1").wait_ready()
    gw = start_service("gateway", module_data, log_dir, LOOPLINE_QA_URL=qa.url, LOOPLINE_GATEWAY_MAX_INFLIGHT="3",
                       LOOPLINE_ADMIN_TOKEN="x" * 32).wait_ready(path="/healthz")
    try:
        body = {"question": "what?", "context": "word " * 6_000}

        def call(_: int) -> tuple[int, float, str | None]:
            t0 = time.perf_counter()
            r = httpx.post(gw.url + "/v1/qa", json=body, timeout=120)
            return r.status_code, time.perf_counter() - t0, r.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(call, range(60)))
        rejected = [(dt, ra) for status, dt, ra in results if status == 503]
        served = [s for s, _, _ in results if s == 200]
        assert served and rejected, [s for s, _, _ in results]
        assert {s for s, _, _ in results} <= {200, 503}
        assert all(ra and int(ra) >= 1 for _, ra in rejected)
        p99 = percentile([dt for dt, _ in rejected], 99)
        # the goal, p99 < 100 ms, is measured by `loopline soak` (README, Reliability); on a shared
        # CI machine this test only proves rejections do not queue behind the work (seconds, not minutes)
        p50 = percentile([dt for dt, _ in rejected], 50)
        print(f"rejections: p50 {p50:.3f}s p99 {p99:.3f}s over {len(rejected)}")
        # p50 was 0.24 s here and 0.54 s in two CI runs. Not the unread 30 KB body: a bare uvicorn app
        # answering 503 without reading it takes 0.5 ms with a reused httpx client and ~22 ms with a fresh
        # one (each builds an SSL context); the rest is ten such clients and the busy QA service sharing
        # two cores (small bodies in `loopline soak` reject in milliseconds). The bound is 1 s, still far
        # below a request that waited for the work
        assert p50 < 1.0 and p99 is not None and p99 < 3.0, f"rejections must be immediate: p50 {p50:.3f}s p99 {p99:.3f}s"
        ok = httpx.post(gw.url + "/v1/qa", json={"question": "q", "context": "c"}, timeout=30)
        assert ok.status_code == 200, "recovers by itself once the load drops"
    finally:
        gw.stop()
        qa.stop()


def test_kill_9_backend_under_load_no_hang_and_recovery(module_data: Path, log_dir: Path) -> None:
    qa = start_service("qa", module_data, log_dir).wait_ready()
    gw = start_service("gateway", module_data, log_dir, LOOPLINE_QA_URL=qa.url, LOOPLINE_GATEWAY_QA_TIMEOUT_S="5",
                       LOOPLINE_GATEWAY_BREAKER_RESET_S="1", LOOPLINE_ADMIN_TOKEN="x" * 32).wait_ready(path="/healthz")
    try:
        body = {"question": "Who?", "context": "Ada wrote it."}
        stop = time.monotonic() + 6
        outcomes: list[tuple[int, float]] = []

        def hammer() -> None:
            with httpx.Client(timeout=30) as client:
                while time.monotonic() < stop:
                    t0 = time.perf_counter()
                    outcomes.append((client.post(gw.url + "/v1/qa", json=body).status_code, time.perf_counter() - t0))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(1.5)
            qa.kill()
            killed_at = time.monotonic()
            for f in futures:
                f.result()
        codes = {c for c, _ in outcomes}
        assert 200 in codes and 503 in codes and codes <= {200, 503, 504}, codes
        assert max(dt for _, dt in outcomes) < 5 + 2, "no request hangs past the backend timeout"
        fast = [dt for c, dt in outcomes if c == 503]
        assert percentile(fast, 50) < 0.2, "the open breaker answers at once"
        qa.start().wait_ready()
        restarted = time.monotonic()
        while time.monotonic() - restarted < 10:
            if httpx.post(gw.url + "/v1/qa", json=body, timeout=10).status_code == 200:
                break
            time.sleep(0.2)
        assert time.monotonic() - restarted < 10, "recovered within 10 s of the restart"
        assert killed_at < restarted
    finally:
        gw.stop()
        qa.stop()


_PROMOTER = """
import sys
from pathlib import Path
from services.common.registry import Registry
reg = Registry(Path(sys.argv[1]))
print("go", flush=True)
i = 0
while True:
    reg.promote("qa-extractive", 1 + i % 2, "production" if i % 3 else "canary", weight=0.2)
    i += 1
"""


def test_kill_9_during_promotion_leaves_valid_aliases(tmp_path: Path, tiny_registry_template: Path) -> None:
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(tiny_registry_template, root)
    reg = Registry(root)
    copy_as_new_version(reg, "qa-extractive", 1)
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _PROMOTER, str(root)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout.readline().strip() == "go"
        time.sleep(0.2 + 0.07 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        data = json.loads((root / "qa-extractive" / "aliases.json").read_text())
        assert data["production"] in (1, 2) and data["canary"] in (None, 1, 2)
        assert reg.verify("qa-extractive") == []
    assert len(reg.aliases("qa-extractive")["history"]) > 5


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from services.common.registry import Registry
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
def write(d):
    (d / "weights.bin").write_bytes(b"x" * (1024 * 1024))
try:
    Registry(Path(sys.argv[1])).create_version("qa-extractive", task="qa", framework="torch", write=write)
except OSError as exc:
    print("error:", exc.strerror)
    sys.exit(3)
"""


def test_disk_full_while_writing_a_version(tmp_path: Path, tiny_registry_template: Path) -> None:
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(tiny_registry_template, root)
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(root)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 3 and "File too large" in proc.stdout, proc.stderr[-500:]
    reg = Registry(root)
    assert reg.versions("qa-extractive") == [1], "no half version"
    assert not list((root / "qa-extractive").glob(".tmp-*")), "the partial files were removed"
    assert reg.verify() == []


def test_corrupted_weights_are_refused_and_the_previous_version_keeps_serving(module_data: Path, log_dir: Path) -> None:
    reg = Registry(module_data / "registry")
    qa = start_service("qa", module_data, log_dir).wait_ready()
    try:
        before = reg.resolve("qa-extractive")
        bad = copy_as_new_version(reg, "qa-extractive", before).version
        weights = reg.version_dir("qa-extractive", bad) / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        assert any("model.safetensors" in p for p in reg.verify("qa-extractive"))
        reg.promote("qa-extractive", bad)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            failed = httpx.get(qa.url + "/v1/versions").json()["failed"]
            if failed:
                break
            time.sleep(0.2)
        assert any("sha256" in reason for reason in failed.values()), failed
        r = httpx.post(qa.url + "/v1/predict", json={"question": "q", "context": "c"})
        assert r.status_code == 200 and r.json()["model"]["version"] == before
        assert httpx.get(qa.url + "/readyz").status_code == 200, "still serving, still ready"
    finally:
        reg.promote("qa-extractive", before)
        qa.stop()


def _png(size: tuple[int, int], mode: str = "1") -> str:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


UNICODE_QUESTIONS = ["¿Qué es esto? 🤔", "ما هذا؟", "e\u0301\u0301\u0301 combining", "zero\u200bwidth\u200d", "ᚠᛇᚻ" * 50,
                     "\U0001F600" * 200, "tab\tnew\nline", "ＦＵＬＬＷＩＤＴＨ"]


def test_hand_written_bad_and_odd_input(stack) -> None:
    url = stack.url
    for q in UNICODE_QUESTIONS:
        r = httpx.post(url + "/v1/qa", json={"question": q, "context": "Ada wrote it. " + q}, timeout=30)
        assert r.status_code == 200, (q, r.text)
        v = httpx.post(url + "/v1/vqa", json={"question": q, "image_path": "samples/images/red_square.png"}, timeout=30)
        assert v.status_code == 200, (q, v.text)
    surrogate = b'{"question": "\\ud800", "context": "abc"}'
    r = httpx.post(url + "/v1/qa", content=surrogate, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "unicode" in r.json()["error"]["message"].lower()
    nul = httpx.post(url + "/v1/qa", json={"question": "a\x00b", "context": "abc"})
    assert nul.status_code == 422
    huge = httpx.post(url + "/v1/vqa", content=b"A" * (50 * 1024 * 1024), headers={"content-type": "application/json"},
                      timeout=120)
    assert huge.status_code == 413
    nested = httpx.post(url + "/v1/vqa", content=b"[" * 200_000 + b"]" * 200_000,
                        headers={"content-type": "application/json"}, timeout=60)
    assert nested.status_code == 422
    oversized = httpx.post(url + "/v1/style", json={"style": "mosaic", "image_b64": _png((9000, 9000))}, timeout=60)
    assert oversized.status_code == 413 and "pixels" in oversized.json()["error"]["message"]
    big_but_ok = httpx.post(url + "/v1/style", json={"style": "mosaic", "image_b64": _png((3000, 2000), "RGB")},
                            timeout=120)
    assert big_but_ok.status_code == 200
    out = Image.open(io.BytesIO(base64.b64decode(big_but_ok.json()["image_b64"])))
    assert max(out.size) == 1024 and out.size[0] / out.size[1] == pytest.approx(1.5, rel=0.01)
    link = stack.data / "samples" / "out-link"
    if not link.exists():
        link.symlink_to("/etc")
    for path in ("../registry/qa-extractive/1/config.json", "/etc/hostname", "samples/out-link/hostname",
                 "samples/../../x.png", "samples/images/../../../etc/passwd"):
        r = httpx.post(url + "/v1/vqa", json={"question": "q", "image_path": path})
        assert r.status_code in (400, 404, 415), (path, r.status_code, r.text)
        assert r.status_code != 415 or "registry" in path, "anything outside the data root is refused before reading"
    assert httpx.post(url + "/v1/qa", json={"question": "q", "context": "c"}).status_code == 200


def test_schemathesis_finds_no_5xx_on_the_gateway(stack, tmp_path: Path) -> None:
    from harness.reliability.soak import fuzz

    result = fuzz(stack.url, examples=15, timeout_s=600, report_dir=tmp_path)
    assert result["passed"], result["output_tail"]
    assert httpx.get(stack.url + "/healthz").status_code == 200
