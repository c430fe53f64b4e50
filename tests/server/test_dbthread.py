"""The DB thread's two lanes: API calls go before queued ingest, each lane in order."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from srvmon_server.dbthread import DbThread


def run_on_a_thread(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())`` on a thread of its own: in the full suite the session's
    playwright browser may hold an event loop on the test's thread."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if failures:
        raise failures[0]


def test_an_api_call_waits_for_the_bulk_call_in_progress_only() -> None:
    """Three ingests queue behind one in progress; a read made after them runs right after
    the one in progress, and the ingests keep their order."""
    db = DbThread()
    ran: list[str] = []
    gate = threading.Event()
    started = threading.Event()

    def blocking() -> None:
        started.set()
        gate.wait(5)
        ran.append("bulk-0")

    async def main() -> None:
        first = asyncio.ensure_future(db.run_bulk(blocking))
        await asyncio.to_thread(started.wait, 5)
        queued = [asyncio.ensure_future(db.run_bulk(ran.append, f"bulk-{i}")) for i in (1, 2, 3)]
        read = asyncio.ensure_future(db.run(ran.append, "read"))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *queued, read)

    run_on_a_thread(main)
    assert ran == ["bulk-0", "read", "bulk-1", "bulk-2", "bulk-3"]
    db.shutdown()


def test_shutdown_drops_what_was_queued_waits_for_the_running_call_and_refuses_more() -> None:
    """Shutdown lets the call in progress finish, cancels the queued ones (every call the
    server makes is bounded; what is queued at shutdown is not waited for) and refuses
    new calls."""
    db = DbThread()
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def running() -> None:
        started.set()
        gate.wait(5)
        ran.append(-1)

    first = db._submit(1, running)
    futures = [db._submit(1, lambda i=i: ran.append(i)) for i in range(3)]
    assert started.wait(5)
    closer = threading.Thread(target=db.shutdown)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # waits for the running call
    gate.set()
    closer.join(5)
    assert not closer.is_alive()
    assert first.done() and not first.cancelled()
    assert [f.cancelled() for f in futures] == [True, True, True]
    assert ran == [-1]
    try:
        db.call(lambda: None)
    except RuntimeError as exc:
        assert "shut down" in str(exc)
    else:
        raise AssertionError("a call after shutdown must be refused")
