"""The interface every sink implements."""

from __future__ import annotations

from typing import Protocol

from attrs import frozen


@frozen(kw_only=True)
class SinkStats:
    """Counters a sink exposes; they ride in every batch's AgentStats."""

    queue_depth: int = 0
    """Batches queued or in flight (handed to the transport, delivery not yet confirmed)."""
    backlog: int = 0
    """Of those, the batches not yet handed to the transport (the broker or server is behind
    or down). The loop pumps between readings only while this is above 0; a batch merely
    awaiting its delivery report is served by the next reading's pump."""
    dropped_batches: int = 0
    delivery_errors: int = 0
    delivered_batches: int = 0


class Sink(Protocol):
    def send(self, key: str, payload: bytes) -> None:
        """Queue one encoded batch. Never blocks on the network, never raises for it."""

    def pump(self) -> None:
        """Make delivery progress and serve delivery reports (called before and after each
        reading, and between readings every ``PUMP_EVERY_SECONDS`` while ``stats().backlog``
        is above 0)."""

    def stats(self) -> SinkStats: ...

    def close(self, timeout: float) -> None:
        """Try to deliver what is queued for up to ``timeout`` seconds, then release."""
