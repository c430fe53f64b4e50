"""The interface every sink implements."""

from __future__ import annotations

from typing import Protocol

from attrs import frozen


@frozen(kw_only=True)
class SinkStats:
    """Counters a sink exposes; they ride in every batch's AgentStats."""

    queue_depth: int = 0
    """Batches queued or in flight. The loop pumps between readings only while this is above
    0, so a sink whose delivery reports are still outstanding must count those batches."""
    dropped_batches: int = 0
    delivery_errors: int = 0
    delivered_batches: int = 0


class Sink(Protocol):
    def send(self, key: str, payload: bytes) -> None:
        """Queue one encoded batch. Never blocks on the network, never raises for it."""

    def pump(self) -> None:
        """Make delivery progress (called once per reading, and between readings every
        ``PUMP_EVERY_SECONDS`` while ``stats().queue_depth`` is above 0)."""

    def stats(self) -> SinkStats: ...

    def close(self, timeout: float) -> None:
        """Try to deliver what is queued for up to ``timeout`` seconds, then release."""
