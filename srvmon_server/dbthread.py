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


class DbThread:
    """Runs calls on one worker thread; records the latest call's latency and the calls
    that found the database unavailable. Errors pass through unchanged."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-db")
        self.latency_seconds = 0.0
        self.errors_total = 0

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
        self._executor.shutdown(wait=True)
