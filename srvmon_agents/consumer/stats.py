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

    def as_dict(self) -> dict[str, object]:
        return {
            "delivered_batches": self.delivered_batches,
            "delivered_samples": self.delivered_samples,
            "duplicate_samples": self.duplicate_samples,
            "retries": self.retries,
            "dead_lettered": self.dead_lettered,
            "in_flight": self.in_flight,
            "paused": self.paused,
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
    _lock: threading.Lock = field(factory=threading.Lock)

    def add(
        self,
        *,
        batches: int = 0,
        samples: int = 0,
        duplicates: int = 0,
        retries: int = 0,
        dead_lettered: int = 0,
    ) -> None:
        with self._lock:
            self.delivered_batches += batches
            self.delivered_samples += samples
            self.duplicate_samples += duplicates
            self.retries += retries
            self.dead_lettered += dead_lettered

    def snapshot(
        self, *, at: float, in_flight: int, paused: bool, lag: dict[str, int]
    ) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                at=at,
                delivered_batches=self.delivered_batches,
                delivered_samples=self.delivered_samples,
                duplicate_samples=self.duplicate_samples,
                retries=self.retries,
                dead_lettered=self.dead_lettered,
                in_flight=in_flight,
                paused=paused,
                lag=lag,
            )


def rate_per_second(older: StatsSnapshot, newer: StatsSnapshot) -> float:
    """Delivered samples per second between two snapshots."""
    elapsed = newer.at - older.at
    if elapsed <= 0:
        return 0.0
    return (newer.delivered_samples - older.delivered_samples) / elapsed
