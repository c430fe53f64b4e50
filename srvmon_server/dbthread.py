"""The one database thread: every storage and alerting call runs on it, in order.

Storage and the engine state are not thread-safe; running them on one worker thread
serialises them without locks, and keeps the IOLoop free while the database works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from srvmon_server.storage.errors import StorageUnavailable

T = TypeVar("T")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a ping's failure as seen (its waiters may all have timed out)."""
    if not future.cancelled():
        future.exception()


class DbThread:
    """Runs calls on one worker thread; records the latest call's latency and the calls
    that found the database unavailable. Errors pass through unchanged."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-db")
        self._probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-probe")
        self._probing: asyncio.Future[Any] | None = None
        self.latency_seconds = 0.0
        self.errors_total = 0

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

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread, awaited from the IOLoop."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self._executor, lambda: fn(*args))
        except StorageUnavailable:
            self.errors_total += 1
            raise
        self.latency_seconds = time.perf_counter() - started
        return result

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread, waited for (start-up, before the IOLoop runs)."""
        return self._executor.submit(fn, *args).result()

    def shutdown(self) -> None:
        """Drop the calls still queued and wait for the running one (every call the server
        makes is bounded: a roll-up pass, a prune batch, one ingest)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._probe.shutdown(wait=False, cancel_futures=True)
