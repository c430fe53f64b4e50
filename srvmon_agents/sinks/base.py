"""The interface every sink implements."""

from __future__ import annotations

from typing import Protocol

from attrs import frozen


@frozen(kw_only=True)
class SinkStats:
    """Counters a sink exposes; they ride in every batch's AgentStats."""

    queue_depth: int = 0
    dropped_batches: int = 0
    delivery_errors: int = 0
    delivered_batches: int = 0


class Sink(Protocol):
    def send(self, key: str, payload: bytes) -> None:
        """Queue one encoded batch. Never blocks on the network, never raises for it."""

    def pump(self) -> None:
        """Make delivery progress (called once per interval, and while idle)."""

    def stats(self) -> SinkStats: ...

    def close(self, timeout: float) -> None:
        """Try to deliver what is queued for up to ``timeout`` seconds, then release."""
