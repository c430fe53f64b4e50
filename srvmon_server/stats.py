"""The server's own figures, for /metrics."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from attrs import define, field

if TYPE_CHECKING:
    from srvmon_server.backlog import Backlog
    from srvmon_server.dbthread import DbThread
    from srvmon_server.hub import Hub
    from srvmon_server.notify import Notifier


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


def server_figures(
    stats: Stats,
    *,
    hub: Hub,
    db: DbThread,
    notifier: Notifier,
    backlog: Backlog,
    clock: Callable[[], datetime],
) -> Callable[[], dict[str, float]]:
    """The figures ``srvmon_server_*`` of /metrics, read fresh at each call."""

    def figures() -> dict[str, float]:
        return {
            "ingest_behind_seconds": backlog.behind_seconds(clock()),
            "ingest_batches_total": stats.ingest_batches_total,
            "ingest_samples_total": stats.ingest_samples_total,
            "ingest_duplicates_total": stats.ingest_duplicates_total,
            "ingest_samples_per_second": stats.samples_per_second(time.monotonic()),
            "sse_clients": hub.client_count,
            "sse_dropped_clients_total": hub.dropped_clients,
            "sse_conflated_events_total": hub.conflated,
            "sse_resyncs_total": hub.resyncs,
            "db_latency_seconds": db.latency_seconds,
            "db_errors_total": db.errors_total,
            "alert_events_total": stats.alert_events_total,
            "notifications_sent_total": notifier.sent,
            "notifications_failed_total": notifier.failed,
            "alertmanager_alerts_active": notifier.alertmanager_active,
        }

    return figures
