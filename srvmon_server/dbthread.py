"""The one database thread: every storage and alerting call runs on it, in order.

Storage and the engine state are not thread-safe; running them on one worker thread
serialises them without locks, and keeps the IOLoop free while the database works.

Two lanes share the thread: ``run`` (what a user or a periodic check waits for: API
reads and writes, the silent check, state saves) goes before ``run_bulk`` (ingest, roll-ups,
pruning). Calls of one lane run in the order they were made. So when ingest cannot keep
up and its work queues, an API request waits for at most the bulk call in progress, not
for the whole queue (bench/bench_fleet.py).

Beside it, ``beside`` runs work that uses connections of its own and reaches the DB
thread's objects only through ``call``: on MySQL/MariaDB the roll-up recomputes there while
ingest goes on (``SampleStore.roll_up_beside``). On SQLite a third thread copies the
write-ahead log into the database file (``checkpoint``), so commits on the DB thread
seldom do.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from srvmon_server.storage.errors import StorageUnavailable

T = TypeVar("T")
INTERACTIVE, BULK = 0, 1
_STOP = 2

Job = tuple[int, int, Callable[[], Any] | None, "Future[Any] | None"]


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a ping's failure as seen (its waiters may all have timed out)."""
    if not future.cancelled():
        future.exception()


class DbThread:
    """Runs calls on one worker thread; records the latest call's latency and the calls
    that found the database unavailable. Errors pass through unchanged."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[Job] = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="srvmon-db", daemon=True)
        self._thread.start()
        self._probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-probe")
        self._probing: asyncio.Future[Any] | None = None
        self._beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-beside")
        self._checkpointer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="srvmon-checkpoint"
        )
        self.latency_seconds = 0.0
        self.errors_total = 0

    def _work(self) -> None:
        while True:
            _lane, _order, fn, future = self._queue.get()
            if fn is None or future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _submit(self, lane: int, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the DB thread is shut down")
            self._queue.put((lane, next(self._order), fn, future))
        return future

    async def probe(self, fn: Callable[[], Any], timeout: float) -> None:
        """Run ``fn`` (a liveness ping) on its own thread, beside the DB thread, so health
        answers while a long call holds the DB thread. Concurrent callers share the ping in
        flight. Raises StorageUnavailable when it fails or takes longer than ``timeout``."""
        if self._probing is None or self._probing.done():
            loop = asyncio.get_running_loop()
            self._probing = loop.run_in_executor(self._probe, fn)
            self._probing.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(self._probing), timeout)
        except TimeoutError:
            raise StorageUnavailable(f"no answer to a ping within {timeout} s") from None

    async def _run(self, lane: int, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        started = time.perf_counter()
        try:
            result = await asyncio.wrap_future(self._submit(lane, lambda: fn(*args)))
        except StorageUnavailable:
            self.errors_total += 1
            raise
        self.latency_seconds = time.perf_counter() - started
        return result

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread, awaited from the IOLoop, ahead of bulk work."""
        return await self._run(INTERACTIVE, fn, args)

    async def run_bulk(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread once no ``run`` call waits (ingest, roll-ups)."""
        return await self._run(BULK, fn, args)

    async def beside(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the one thread beside the DB thread, awaited from the IOLoop.
        ``fn`` must not touch what the DB thread owns except through ``call``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._beside, lambda: fn(*args))

    async def checkpoint(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a thread of its own (SQLite's WAL checkpoint, ``Storage.checkpoint``),
        so neither the DB thread nor a roll-up pass beside it waits for the copy."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._checkpointer, fn)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread, waited for (start-up, or another thread)."""
        return self._submit(INTERACTIVE, lambda: fn(*args)).result()

    def shutdown(self) -> None:
        """Drop the calls still queued (they fail with CancelledError) and wait for the
        running one (every call the server makes is bounded: a roll-up pass, a prune batch,
        one ingest)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    _lane, _order, _fn, future = self._queue.get_nowait()
                except queue.Empty:
                    break
                if future is not None:
                    future.cancel()
            self._queue.put((_STOP, next(self._order), None, None))
        self._probe.shutdown(wait=False, cancel_futures=True)
        self._beside.shutdown(wait=False, cancel_futures=True)
        self._checkpointer.shutdown(wait=False, cancel_futures=True)
        if threading.current_thread() is not self._thread:
            self._thread.join()
