"""The server's own figures, for /metrics."""

from __future__ import annotations

from collections import deque

from attrs import define, field


@define
class Stats:
    ingest_batches_total: int = 0
    ingest_samples_total: int = 0
    ingest_duplicates_total: int = 0
    alert_events_total: int = 0
    rejected_samples_total: dict[str, int] = field(factory=lambda: {"timestamp": 0})
    """Samples refused at ingest, by reason (``timestamp``: outside the accepted window)."""
    recent: deque[tuple[float, int]] = field(factory=lambda: deque(maxlen=4096))

    def record_ingest(self, samples: int, duplicates: int, now: float) -> None:
        self.ingest_batches_total += 1
        self.ingest_samples_total += samples
        self.ingest_duplicates_total += duplicates
        self.recent.append((now, samples))

    def record_rejected(self, reason: str, samples: int) -> None:
        self.rejected_samples_total[reason] = self.rejected_samples_total.get(reason, 0) + samples

    def samples_per_second(self, now: float, window: float = 60.0) -> float:
        total = sum(n for t, n in self.recent if now - t <= window)
        return total / window
