"""How far the server's own ingest is behind: the ingest it holds and has not finished.

An ingest request is held from the moment its body is in (before it is decoded, while it
waits for the decode thread and the database thread) until it is answered; batches that
other paths hand over (standalone's collector, a replica's Kafka relay) are held while they
are stored. The age of the oldest one held is how far behind the server is: an overloaded
server answers late, so the collectors and consumers behind it deliver late. The silence
checks (the ``silent`` rule, a machine's ``silent`` status) add that age to their limits,
so a backlog inside srvmon never reads as machines gone quiet; a machine that really
stopped is still found, that much later. ``/metrics`` exposes the age as
``srvmon_server_ingest_behind_seconds`` for an alert on srvmon itself (docs/server.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import count


class Backlog:
    """Ingest under way, by the time it came in (``clock``: the server's clock)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._since: dict[int, datetime] = {}
        self._numbers = count()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold one piece of ingest for the block (on the IOLoop)."""
        number = next(self._numbers)
        self._since[number] = self._clock()
        try:
            yield
        finally:
            del self._since[number]

    @property
    def held_now(self) -> int:
        return len(self._since)

    def behind_seconds(self, now: datetime) -> float:
        """The age of the oldest ingest held at ``now`` (0 when none is)."""
        if not self._since:
            return 0.0
        return max(0.0, (now - min(self._since.values())).total_seconds())
