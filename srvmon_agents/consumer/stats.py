"""The consumer's own figures: counters, rates and lag per partition."""

from __future__ import annotations

import threading

from attrs import define, field, frozen


@frozen(kw_only=True)
class StatsSnapshot:
    """A consistent copy of the counters at one instant (monotonic seconds ``at``)."""

    at: float
    delivered_batches: int
    delivered_samples: int
    duplicate_samples: int
    retries: int
    dead_lettered: int
    in_flight: int
    paused: bool
    lag: dict[str, int]
    """Messages behind the partition's high watermark, keyed ``topic[partition]``."""
    dead_letter_truncated: int = 0
    """Of ``dead_lettered``: parked as a truncated copy (the full one could not be)."""
    dead_letter_failures: int = 0
    """Poison messages moved past without any dead-letter copy."""
    uncommitted: int = 0
    """Finished (acknowledged or parked) messages whose offsets are not committed yet."""
    broker_reachable: bool | None = None
    """Whether a Kafka broker is reachable; None before the first verdict."""

    def as_dict(self) -> dict[str, object]:
        return {
            "delivered_batches": self.delivered_batches,
            "delivered_samples": self.delivered_samples,
            "duplicate_samples": self.duplicate_samples,
            "retries": self.retries,
            "dead_lettered": self.dead_lettered,
            "dead_letter_truncated": self.dead_letter_truncated,
            "dead_letter_failures": self.dead_letter_failures,
            "in_flight": self.in_flight,
            "uncommitted": self.uncommitted,
            "paused": self.paused,
            "broker_reachable": self.broker_reachable,
            "lag": dict(self.lag),
            "lag_total": sum(self.lag.values()),
        }


@define
class RelayStats:
    """Thread-safe counters updated by the delivery workers."""

    delivered_batches: int = 0
    delivered_samples: int = 0
    duplicate_samples: int = 0
    retries: int = 0
    dead_lettered: int = 0
    dead_letter_truncated: int = 0
    dead_letter_failures: int = 0
    _lock: threading.Lock = field(factory=threading.Lock)

    def add(
        self,
        *,
        batches: int = 0,
        samples: int = 0,
        duplicates: int = 0,
        retries: int = 0,
        dead_lettered: int = 0,
        dead_letter_truncated: int = 0,
        dead_letter_failures: int = 0,
    ) -> None:
        with self._lock:
            self.delivered_batches += batches
            self.delivered_samples += samples
            self.duplicate_samples += duplicates
            self.retries += retries
            self.dead_lettered += dead_lettered
            self.dead_letter_truncated += dead_letter_truncated
            self.dead_letter_failures += dead_letter_failures

    def snapshot(
        self,
        *,
        at: float,
        in_flight: int,
        paused: bool,
        lag: dict[str, int],
        uncommitted: int = 0,
        broker_reachable: bool | None = None,
    ) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                at=at,
                delivered_batches=self.delivered_batches,
                delivered_samples=self.delivered_samples,
                duplicate_samples=self.duplicate_samples,
                retries=self.retries,
                dead_lettered=self.dead_lettered,
                dead_letter_truncated=self.dead_letter_truncated,
                dead_letter_failures=self.dead_letter_failures,
                in_flight=in_flight,
                uncommitted=uncommitted,
                paused=paused,
                broker_reachable=broker_reachable,
                lag=lag,
            )


def rate_per_second(older: StatsSnapshot, newer: StatsSnapshot) -> float:
    """Delivered samples per second between two snapshots."""
    elapsed = newer.at - older.at
    if elapsed <= 0:
        return 0.0
    return (newer.delivered_samples - older.delivered_samples) / elapsed
