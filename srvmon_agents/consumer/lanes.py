"""The lanes: messages taken from Kafka, queued per partition, and what became of them.

One lock (a condition) guards everything the Kafka thread and the delivery workers share:
the per-partition queues, which partitions are assigned (and their assignment *epoch*),
which lanes are retrying, and the offset ledger. A lane is drained by at most one worker
at a time, so a partition's messages are posted strictly in offset order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from srvmon_agents.consumer.ledger import OffsetLedger
from srvmon_agents.consumer.work import PartitionKey, Work


class Lanes:
    """Queues of taken messages per partition; ``schedule(lane)`` starts a drain of a lane
    that got work while no worker was on it."""

    def __init__(self, schedule: Callable[[PartitionKey], object]) -> None:
        self._schedule = schedule
        self._cond = threading.Condition()
        self._queues: dict[PartitionKey, deque[Work]] = {}
        self._active: set[PartitionKey] = set()
        self._retrying: set[PartitionKey] = set()
        self._epochs: dict[PartitionKey, int] = {}
        self._assigned: set[PartitionKey] = set()
        self._ledger = OffsetLedger()
        self._sizes: dict[PartitionKey, dict[int, int]] = {}
        """Bytes of each message in flight, per lane and offset."""
        self._bytes = 0
        self.hard_stop = threading.Event()
        """Set when the relay gives up on in-flight work (shutdown timeout): workers stop."""

    # ---- assignment (Kafka thread) ------------------------------------------------------

    def assigned(self) -> list[PartitionKey]:
        with self._cond:
            return sorted(self._assigned)

    def assign(self, keys: set[PartitionKey]) -> None:
        with self._cond:
            self._assigned |= keys
            for key in keys:
                self._epochs[key] = self._epochs.get(key, 0) + 1

    def abandon(self, keys: set[PartitionKey]) -> None:
        """Revoked or lost: drop queued work, stop retries, forget the offsets."""
        with self._cond:
            self._assigned -= keys
            for key in keys:
                self._epochs[key] = self._epochs.get(key, 0) + 1
                queue = self._queues.get(key)
                if queue is not None:
                    queue.clear()
                self._retrying.discard(key)
                self._bytes -= sum(self._sizes.pop(key, {}).values())
            self._ledger.forget(keys)
            self._cond.notify_all()

    def accept(
        self,
        key: PartitionKey,
        offset: int,
        message_key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None,
    ) -> bool:
        """Queue a consumed message on its lane; False when its partition is not ours."""
        with self._cond:
            if key not in self._assigned:
                return False
            work = Work(key, offset, message_key, value, timestamp_ms, self._epochs.get(key, 0))
            self._ledger.track(key, offset)
            size = len(value) if value is not None else 0
            sizes, queue = self._sizes.get(key), self._queues.get(key)
            if sizes is None:  # (not setdefault: it would build both for every message)
                sizes = self._sizes[key] = {}
            if queue is None:
                queue = self._queues[key] = deque()
            sizes[offset] = size
            self._bytes += size
            queue.append(work)
            start = key not in self._active
            if start:
                self._active.add(key)
        if start:
            self._schedule(key)
        return True

    # ---- delivery workers ---------------------------------------------------------------

    def take(self, lane: PartitionKey, limit: int) -> list[Work]:
        """Up to ``limit`` queued messages of ``lane``, in offset order; an empty list ends
        the worker's turn on this lane."""
        with self._cond:
            queue = self._queues.get(lane)
            if not queue:
                self._active.discard(lane)
                self._queues.pop(lane, None)
                return []
            return [queue.popleft() for _ in range(min(len(queue), max(1, limit)))]

    def stale(self, work: Work) -> bool:
        """True when ``work`` must be given up: shutdown timed out, or its partition was
        revoked since it was taken (the partition's next owner delivers it)."""
        return self.hard_stop.is_set() or self._epochs.get(work.key) != work.epoch

    def finish(self, work: Work) -> None:
        """``work`` is done (acknowledged or moved past); its lane is no longer retrying."""
        with self._cond:
            self._retrying.discard(work.key)
            if self._epochs.get(work.key) == work.epoch:
                self._ledger.finish(work.key, work.offset)
                self._bytes -= self._sizes.get(work.key, {}).pop(work.offset, 0)
            self._cond.notify_all()

    def set_retrying(self, lane: PartitionKey, retrying: bool) -> None:
        with self._cond:
            if retrying:
                self._retrying.add(lane)
            else:
                self._retrying.discard(lane)

    # ---- figures and commits (any thread) -----------------------------------------------

    def any_retrying(self) -> bool:
        with self._cond:
            return bool(self._retrying)

    def in_flight(self, keys: set[PartitionKey] | None = None) -> int:
        with self._cond:
            return self._ledger.in_flight(keys)

    def in_flight_bytes(self) -> int:
        """Bytes of the messages :meth:`in_flight` counts."""
        with self._cond:
            return self._bytes

    def uncommitted(self) -> int:
        with self._cond:
            return self._ledger.uncommitted()

    def wait_finished(
        self, keys: set[PartitionKey], until: float, clock: Callable[[], float]
    ) -> None:
        """Wait until nothing of ``keys`` is in flight, or ``clock()`` reaches ``until``."""
        with self._cond:
            while self._ledger.in_flight(keys) and clock() < until:
                self._cond.wait(0.05)

    def to_commit(self, keys: set[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        with self._cond:
            wanted = keys if keys is not None else set(self._assigned)
            return self._ledger.to_commit(wanted)

    def mark_committed(self, offsets: dict[PartitionKey, int]) -> None:
        with self._cond:
            self._ledger.mark_committed(offsets)
