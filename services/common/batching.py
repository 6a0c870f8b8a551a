"""Dynamic batching: a bounded queue of futures and one worker that forms batches.

The worker takes the oldest request, then waits at most ``max_wait_ms`` for up to
``max_batch_size - 1`` more requests for the *same* loaded version (a batch never mixes
versions), runs the model on one bounded worker thread, and sets a result or an error on
every waiting future. A full queue answers 503 at once instead of queueing forever.

It waits only for requests that exist: the handler announces each request while it is still
being prepared (image decode, tokenizing), and when the queue is empty and nothing is being
prepared the batch runs at once, so a lone request never pays ``max_wait_ms``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import LooplineError, Unavailable

log = logging.getLogger("loopline.batching")


@dataclass
class _Pending:
    key: Any  # the loaded version (runtime object) the item must run on
    item: Any
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[Any, int, list[float], float], None]


class DynamicBatcher:
    """Create inside a running event loop (``start`` creates the asyncio objects)."""

    def __init__(self, run_batch: Callable[[Any, list[Any]], list[Any]], *, max_batch_size: int, max_wait_ms: float,
                 max_queue: int, executor: concurrent.futures.Executor, observe: BatchObserver | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.executor = executor
        self.observe = observe
        self._queue: asyncio.Queue[_Pending] | None = None
        self._held: collections.deque[_Pending] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._avg_batch_s = 0.05
        self._preparing = 0
        self._changed: asyncio.Event | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._worker(), name="batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for pending in list(self._held) + self._drain():
            if not pending.future.done():
                pending.future.set_exception(Unavailable("service is shutting down"))

    @property
    def depth(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + len(self._held)

    def preparing(self, delta: int) -> None:
        """A request started (+1) or finished (-1) being prepared: it may join the next batch."""
        self._preparing += delta
        if self._changed is not None:
            self._changed.set()

    async def submit(self, key: Any, item: Any, timeout_s: float) -> Any:
        assert self._queue is not None, "start() the batcher inside the running loop first"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(key, item, future))
            if self._changed is not None:
                self._changed.set()
        except asyncio.QueueFull:
            raise Unavailable(f"the service is at capacity ({self.max_queue} requests queued); retry shortly",
                              code="overloaded", retry_after=self.retry_after()) from None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            future.cancel()  # the worker skips cancelled entries
            raise Unavailable(f"no answer within {timeout_s:.0f} s; the service is overloaded",
                              code="timeout", retry_after=self.retry_after()) from None

    def retry_after(self) -> float:
        batches_ahead = self.depth / max(1, self.max_batch_size) + 1
        return max(1.0, batches_ahead * self._avg_batch_s)

    # -- worker -----------------------------------------------------------------------
    async def _next(self, timeout: float | None) -> _Pending | None:
        assert self._queue is not None
        if self._held:
            return self._held.popleft()
        if timeout is None:
            return await self._queue.get()
        if timeout <= 0:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _arrival(self, deadline: float) -> _Pending | None:
        """The next queued request, waiting until ``deadline`` only while some request is still being
        prepared (none: no batch-mate can come, run now)."""
        assert self._queue is not None and self._changed is not None
        while True:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self._preparing <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None

    async def _collect(self) -> list[_Pending]:
        first = await self._next(None)
        assert first is not None
        batch = [first]
        others: list[_Pending] = []
        deadline = time.perf_counter() + self.max_wait_s
        held_budget = len(self._held)  # look at the held ones once, then the queue
        while len(batch) < self.max_batch_size:
            if held_budget > 0:
                held_budget -= 1
                nxt = self._held.popleft()
            else:
                nxt = await self._arrival(deadline)
            if nxt is None:
                break
            (batch if nxt.key is first.key else others).append(nxt)
        self._held.extendleft(reversed(others))
        return [p for p in batch if not p.future.cancelled()]

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            key = batch[0].key
            started = time.perf_counter()
            waits = [started - p.enqueued for p in batch]
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, key, [p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"runtime returned {len(results)} results for {len(batch)} inputs")
                for pending, result in zip(batch, results, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(result, LooplineError):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
            except Exception as exc:  # the whole batch failed: every caller gets the error
                log.exception("batch of %d failed", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            elapsed = time.perf_counter() - started
            self._avg_batch_s = 0.8 * self._avg_batch_s + 0.2 * elapsed
            if self.observe:
                self.observe(key, len(batch), waits, elapsed)

    def _drain(self) -> list[_Pending]:
        drained = []
        while self._queue is not None and not self._queue.empty():
            drained.append(self._queue.get_nowait())
        return drained
