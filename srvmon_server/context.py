"""ServerContext: what every handler shares (config, storage, DB thread, hub, alerting)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from attrs import define, field
from tornado.ioloop import PeriodicCallback

from srvmon_server.config import ServerConfig
from srvmon_server.hub import Hub
from srvmon_server.notify import Notifier
from srvmon_server.presence import Presence

T = TypeVar("T")


ROLL_UP_INTERVAL_SECONDS = 5.0
"""How often the DB thread folds newly ingested raw rows into the rollups."""


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@define
class Stats:
    """The server's own figures, for /metrics."""

    ingest_batches_total: int = 0
    ingest_samples_total: int = 0
    ingest_duplicates_total: int = 0
    alert_events_total: int = 0
    db_latency_seconds: float = 0.0
    db_errors_total: int = 0
    recent: deque[tuple[float, int]] = field(factory=lambda: deque(maxlen=4096))

    def record_ingest(self, samples: int, duplicates: int, now: float) -> None:
        self.ingest_batches_total += 1
        self.ingest_samples_total += samples
        self.ingest_duplicates_total += duplicates
        self.recent.append((now, samples))

    def samples_per_second(self, now: float, window: float = 60.0) -> float:
        total = sum(n for t, n in self.recent if now - t <= window)
        return total / window


class ServerContext:
    def __init__(self, config: ServerConfig, storage: Any, clock: Clock) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="srvmon-db")
        self.hub = Hub(
            ring_size=config.ring_buffer_size, client_queue_size=config.client_queue_size
        )
        self.notifier = Notifier(
            webhook_urls=config.webhook_urls,
            alertmanager_url=config.alertmanager_url,
            external_url=config.external_url,
            retries=config.webhook_retries,
            backoff_seconds=config.webhook_backoff_seconds,
            timeout_seconds=config.webhook_timeout_seconds,
        )
        self.stats = Stats()
        self.presence = Presence(config.silent_after_seconds)
        self.alerting: Any = None
        self.background: set[asyncio.Task[Any]] = set()
        self._periodic: PeriodicCallback | None = None
        self._pruning: PeriodicCallback | None = None
        self._rolling: PeriodicCallback | None = None
        self._ticking = False

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the one DB thread; storage unavailability becomes a 503."""
        from srvmon_server.handlers.base import ApiError
        from srvmon_server.storage.errors import InvalidQuery, StorageUnavailable

        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(self.executor, lambda: fn(*args))
        except StorageUnavailable as exc:
            self.stats.db_errors_total += 1
            raise ApiError(503, "db_unavailable", f"the database is unavailable: {exc}") from None
        except InvalidQuery as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        self.stats.db_latency_seconds = time.perf_counter() - started
        return result

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def close(self) -> None:
        self.hub.close_all()
        for callback in (self._periodic, self._pruning, self._rolling):
            if callback is not None:
                callback.stop()
        self._periodic = self._pruning = self._rolling = None
        for task in list(self.background):
            task.cancel()
        self.executor.shutdown(wait=True)

    # --- alerting glue (IOLoop side) ---------------------------------------------------------

    async def reload_rules(self) -> None:
        if self.alerting is not None:
            await self.run_db(self.alerting.reload_rules)

    async def reload_silences(self) -> None:
        if self.alerting is not None:
            await self.run_db(self.alerting.reload_silences)

    def publish_alerts(self, events: list[dict[str, Any]]) -> None:
        """Send alert transitions to SSE subscribers, and unsilenced ones to notifications."""
        if not events:
            return
        self.stats.alert_events_total += len(events)
        for event in events:
            self.hub.publish("alert", event, event.get("machine_key"))
        loud = [e for e in events if not e.get("silenced")]
        if loud and self.notifier.enabled:
            self.spawn(self.notifier.notify(loud))

    def sweep_presence(self) -> None:
        """Publish a ``machine`` event for each machine that just went silent."""
        for key, last_seen in self.presence.sweep(self.clock()):
            data = {"key": key, "status": "silent", "last_seen": iso(last_seen)}
            self.hub.publish("machine", data, key)

    async def tick(self) -> None:
        """The periodic silent-machine check; skipped while the previous one still runs."""
        self.sweep_presence()
        if self.alerting is None or self._ticking:
            return
        self._ticking = True
        try:
            events = await self.run_db(self.alerting.on_tick, self.clock())
            self.publish_alerts(events)
        except Exception:  # the DB may be down; the next tick tries again
            log.exception("periodic alert check failed")
        finally:
            self._ticking = False

    async def prune(self) -> None:
        """Drop samples, rollups, alert events and ended silences past their retentions."""
        from datetime import timedelta

        config = self.config
        try:
            deleted = await self.run_db(
                lambda: self.storage.prune(
                    self.clock(),
                    raw_retention=timedelta(days=config.raw_retention_days),
                    rollup_1m_retention=timedelta(days=config.rollup_1m_retention_days),
                    rollup_1h_retention=timedelta(days=config.rollup_1h_retention_days),
                    alert_history_retention=timedelta(days=config.alert_history_retention_days),
                )
            )
        except Exception:  # the DB may be down; the next run tries again
            log.exception("retention pruning failed")
            return
        log.info("retention pruning deleted %d rows", deleted)

    async def roll_up(self) -> None:
        """Bring the 1 m / 1 h rollups up to date (ingest leaves them to this call)."""
        try:
            await self.run_db(self.storage.roll_up)
        except Exception:  # the DB may be down; the next run tries again
            log.exception("rollup maintenance failed")

    def start(self) -> None:
        """Start the periodic silent check and pruning on the running IOLoop (idempotent)."""
        if self._periodic is not None:
            return
        self._periodic = PeriodicCallback(
            lambda: self.spawn(self.tick()), self.config.silence_check_seconds * 1000
        )
        self._periodic.start()
        self._pruning = PeriodicCallback(
            lambda: self.spawn(self.prune()), self.config.prune_interval_seconds * 1000
        )
        self._pruning.start()
        self._rolling = PeriodicCallback(
            lambda: self.spawn(self.roll_up()), ROLL_UP_INTERVAL_SECONDS * 1000
        )
        self._rolling.start()
