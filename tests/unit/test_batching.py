from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from services.common.batching import DynamicBatcher
from services.common.errors import Invalid, Unavailable
from tests.fixtures import Gate, SumRecorder, error_batch, per_item_error_batch, slow_batch, sum_batch

pytestmark = pytest.mark.unit


def _batcher(run, **kw) -> DynamicBatcher:
    opts = dict(max_batch_size=4, max_wait_ms=50, max_queue=16)
    opts.update(kw)
    return DynamicBatcher(run, executor=concurrent.futures.ThreadPoolExecutor(1), **opts)


def test_batches_form_up_to_max_size_and_every_caller_gets_its_answer() -> None:
    async def main() -> list:
        SumRecorder.batches.clear()
        b = _batcher(sum_batch)
        b.start()
        key = object()
        results = await asyncio.gather(*(b.submit(key, [i, i], 5) for i in range(10)))
        await b.stop()
        return results

    results = asyncio.run(main())
    assert [r["sum"] for r in results] == [2 * i for i in range(10)]
    assert max(SumRecorder.batches) == 4 and sum(SumRecorder.batches) == 10


def test_batch_never_mixes_versions() -> None:
    seen: list[tuple[object, int]] = []

    def run(key, items):
        seen.append((key, len(items)))
        return [{"k": id(key)} for _ in items]

    async def main() -> list:
        b = _batcher(run, max_batch_size=8)
        b.start()
        k1, k2 = object(), object()
        out = await asyncio.gather(*(b.submit(k1 if i % 2 else k2, i, 5) for i in range(8)))
        await b.stop()
        return [(k1, k2), out]

    (k1, k2), out = asyncio.run(main())
    assert {key for key, _ in seen} == {k1, k2}
    assert sum(n for _, n in seen) == 8
    assert [o["k"] for o in out] == [id(k1 if i % 2 else k2) for i in range(8)]


def test_queue_full_answers_503_at_once_with_retry_after() -> None:
    gate = Gate()

    async def main() -> tuple[int, int, Unavailable | None]:
        b = _batcher(gate.run, max_batch_size=1, max_queue=2)
        b.start()
        key = object()
        tasks = [asyncio.create_task(b.submit(key, i, 10)) for i in range(6)]
        await asyncio.sleep(0.2)
        rejected = [t for t in tasks if t.done() and isinstance(t.exception(), Unavailable)]
        error = rejected[0].exception() if rejected else None
        gate.event.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await b.stop()
        ok = sum(1 for d in done if isinstance(d, dict))
        return ok, len(rejected), error  # type: ignore[return-value]

    ok, rejected, error = asyncio.run(main())
    assert rejected >= 3 and ok + rejected == 6
    assert error is not None and error.status == 503 and "Retry-After" in error.headers


def test_a_failing_batch_fails_every_caller_and_the_worker_survives() -> None:
    async def main() -> tuple[list, dict]:
        b = _batcher(error_batch)
        b.start()
        out = await asyncio.gather(*(b.submit(object(), i, 5) for i in range(3)), return_exceptions=True)
        b.run_batch = sum_batch
        after = await b.submit(object(), [1, 2], 5)
        await b.stop()
        return out, after

    out, after = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) for o in out)
    assert after == {"sum": 3}


def test_per_item_errors_reach_only_their_caller() -> None:
    async def main() -> list:
        b = _batcher(per_item_error_batch)
        b.start()
        key = object()
        out = await asyncio.gather(*(b.submit(key, i, 5) for i in range(4)), return_exceptions=True)
        await b.stop()
        return out

    out = asyncio.run(main())
    assert out[0] == {"ok": 0} and out[2] == {"ok": 2}
    assert isinstance(out[1], Invalid) and isinstance(out[3], Invalid)


def test_timeout_sheds_with_503() -> None:
    async def main() -> Exception | None:
        b = _batcher(slow_batch(0.5), max_batch_size=1)
        b.start()
        try:
            await b.submit(object(), 1, 0.05)
        except Unavailable as exc:
            return exc
        finally:
            await b.stop()
        return None

    exc = asyncio.run(main())
    assert exc is not None and exc.status == 503


def test_a_lone_request_does_not_wait_for_batch_mates() -> None:
    """Nothing else queued or being prepared: the batch runs at once, not after max_wait_ms."""
    import time

    async def main() -> float:
        b = _batcher(sum_batch, max_wait_ms=5000)
        b.start()
        t0 = time.perf_counter()
        await b.submit(object(), [1, 2], 30)
        elapsed = time.perf_counter() - t0
        await b.stop()
        return elapsed

    assert asyncio.run(main()) < 2.5  # half the 5 s wait: it did not wait


def test_a_request_still_being_prepared_joins_the_batch() -> None:
    async def main() -> list[int]:
        SumRecorder.batches.clear()
        b = _batcher(sum_batch, max_wait_ms=5000)
        b.start()
        key = object()
        b.preparing(+1)  # a second request is decoding its image

        async def late() -> dict:
            await asyncio.sleep(0.05)
            b.preparing(-1)
            return await b.submit(key, [3, 3], 30)

        await asyncio.gather(b.submit(key, [1, 1], 30), late())
        await b.stop()
        return list(SumRecorder.batches)

    assert asyncio.run(main()) == [2]
