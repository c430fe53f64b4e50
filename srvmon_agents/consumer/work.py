"""The unit of work: one message taken from Kafka, and what decoding it gave."""

from __future__ import annotations

from attrs import frozen

from srvmon_core.schema import Batch

PartitionKey = tuple[str, int]
"""(topic, partition): one partition is one *lane*, posted strictly in offset order."""


@frozen
class Work:
    """A message taken from Kafka; ``epoch`` is its partition's assignment generation, so
    work of a revoked (or lost) assignment is recognised as stale and never finished."""

    key: PartitionKey
    offset: int
    message_key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    epoch: int

    @property
    def label(self) -> str:
        """``topic[partition]@offset``, for log lines."""
        return f"{self.key[0]}[{self.key[1]}]@{self.offset}"


@frozen
class Ready:
    """A decoded message and the envelope bytes to post for it."""

    work: Work
    batch: Batch
    body: bytes

    @property
    def samples(self) -> int:
        return (1 if self.batch.host is not None else 0) + len(self.batch.containers)
