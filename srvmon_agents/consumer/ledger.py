"""Which offsets may be committed: the contiguous finished prefix of each partition.

Pure bookkeeping, no Kafka calls, so the commit rule can be tested on its own.
A message is *finished* when the server acknowledged it or it was moved past as poison
(dead-lettered, or counted as a dead-letter failure). The committable offset of a partition
is one past the highest offset whose predecessors (within the tracked messages) are all
finished.
"""

from __future__ import annotations

from bisect import bisect_left

from attrs import define, field

from srvmon_agents.consumer.work import PartitionKey

__all__ = ["OffsetLedger", "PartitionKey"]


@define
class _PartitionLedger:
    pending: list[int] = field(factory=list)
    """Offsets handed out and not yet known to be finished, in ascending order."""
    finished: set[int] = field(factory=set)
    committable: int | None = None
    """Next offset to commit (one past the last finished prefix offset), or None."""
    first: int | None = None
    """The first offset ever tracked (what "uncommitted" counts from before any commit)."""

    def track(self, offset: int) -> None:
        if self.pending and offset <= self.pending[-1]:
            raise ValueError(f"offset {offset} tracked out of order after {self.pending[-1]}")
        if self.first is None:
            self.first = offset
        self.pending.append(offset)

    def finish(self, offset: int) -> None:
        index = bisect_left(self.pending, offset)
        if index == len(self.pending) or self.pending[index] != offset:
            return  # not handed out, or already finished: nothing to do
        self.finished.add(offset)
        advanced = 0
        for pending_offset in self.pending:
            if pending_offset not in self.finished:
                break
            self.finished.discard(pending_offset)
            self.committable = pending_offset + 1
            advanced += 1
        if advanced:
            del self.pending[:advanced]


@define
class OffsetLedger:
    """Tracks handed-out messages per partition and computes what is safe to commit."""

    _partitions: dict[PartitionKey, _PartitionLedger] = field(factory=dict)
    _committed: dict[PartitionKey, int] = field(factory=dict)

    def track(self, key: PartitionKey, offset: int) -> None:
        """A message at ``offset`` was handed to delivery (call in consumption order)."""
        ledger = self._partitions.get(key)
        if ledger is None:  # not setdefault: that would build a ledger per message
            ledger = self._partitions[key] = _PartitionLedger()
        ledger.track(offset)

    def finish(self, key: PartitionKey, offset: int) -> None:
        """The message at ``offset`` was acknowledged or moved past (twice is harmless)."""
        ledger = self._partitions.get(key)
        if ledger is not None:
            ledger.finish(offset)

    def in_flight(self, keys: set[PartitionKey] | None = None) -> int:
        """How many tracked messages are not finished (optionally only for ``keys``)."""
        return sum(
            len(ledger.pending)
            for key, ledger in self._partitions.items()
            if keys is None or key in keys
        )

    def uncommitted(self) -> int:
        """Finished messages whose offsets are not committed yet: what a crash now would
        deliver again although the server already has it."""
        total = 0
        for key, ledger in self._partitions.items():
            if ledger.committable is None or ledger.first is None:
                continue
            base = self._committed.get(key, ledger.first)
            total += max(0, ledger.committable - base)
        return total

    def to_commit(self, keys: set[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        """Offsets that advanced since the last :meth:`mark_committed`, per partition."""
        result: dict[PartitionKey, int] = {}
        for key, ledger in self._partitions.items():
            if keys is not None and key not in keys:
                continue
            if ledger.committable is not None and ledger.committable != self._committed.get(key):
                result[key] = ledger.committable
        return result

    def mark_committed(self, offsets: dict[PartitionKey, int]) -> None:
        """The broker has ``offsets``; a late answer for older ones changes nothing."""
        for key, offset in offsets.items():
            if key in self._partitions and offset > self._committed.get(key, -1):
                self._committed[key] = offset

    def forget(self, keys: set[PartitionKey]) -> None:
        """Drop all knowledge of ``keys``: revoked partitions, the new owner re-delivers."""
        for key in keys:
            self._partitions.pop(key, None)
            self._committed.pop(key, None)
