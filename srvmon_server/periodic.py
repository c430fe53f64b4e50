"""The server's periodic jobs on the IOLoop: the silent-machine check, the periodic save
of alert state, roll-ups, retention pruning, SQLite's WAL checkpoint and recent-row move,
and re-sending firing alerts to Alertmanager. Each runs its work on the DB thread or a
thread beside it (the resend only posts); a failure is logged and the next run tries again
(the database may be down)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from tornado.ioloop import PeriodicCallback

from srvmon_server.alerting import Alerting
from srvmon_server.background import Background
from srvmon_server.backlog import Backlog
from srvmon_server.config import ServerConfig
from srvmon_server.dbthread import DbThread
from srvmon_server.live import Live
from srvmon_server.storage import Storage
from srvmon_server.tokens import Tokens

log = logging.getLogger(__name__)

ROLL_UP_INTERVAL_SECONDS = 5.0
"""How often the DB thread folds newly ingested raw rows into the rollups."""
CHECKPOINT_INTERVAL_SECONDS = 1.0
"""How often SQLite's write-ahead log is copied into the database file, on a thread of its
own (``Storage.checkpoint``): a second of a large fleet's commits is a few thousand pages,
which the DB thread's commits would otherwise copy themselves, holding up ingest."""


SETTLE_INTERVAL_SECONDS = 10.0
"""How often SQLite's recent raw rows are moved into ``samples``: each move writes a page
of ``samples`` per machine whatever it carries, so ten seconds of rows share one write
(``bench/bench_sqlite_history.py --settle``)."""


class Periodic:
    def __init__(
        self,
        *,
        config: ServerConfig,
        clock: Callable[[], datetime],
        db: DbThread,
        storage: Storage,
        alerting: Alerting,
        live: Live,
        background: Background,
        backlog: Backlog,
        tokens: Tokens | None = None,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._clock = clock
        self._db = db
        self._storage = storage
        self._alerting = alerting
        self._live = live
        self._backlog = backlog
        self._background = background
        self._callbacks: list[PeriodicCallback] = []
        self._running: set[str] = set()

    @contextmanager
    def _alone(self, job: str) -> Iterator[bool]:
        """True when no run of ``job`` is under way (it is then marked running for the
        block); False tells the caller to skip this run."""
        if job in self._running:
            yield False
            return
        self._running.add(job)
        try:
            yield True
        finally:
            self._running.discard(job)

    async def tick(self) -> None:
        """Presence sweep and the silent-machine check (skipped while the last one runs),
        each allowing for the ingest the server holds unfinished (``backlog.py``)."""
        now = self._clock()
        self._live.sweep(now, self._backlog.behind_seconds(now))
        with self._alone("tick") as alone:
            if not alone:
                return
            try:
                now = self._clock()
                grace = self._backlog.behind_seconds(now)
                self._live.alerts(await self._db.run(self._alerting.on_tick, now, grace))
            except Exception:  # the DB may be down; the next tick tries again
                log.exception("periodic alert check failed")
        notifier = self._live.notifier
        if notifier.enabled:  # alerts that fired under a silence which has ended
            self._live.send(notifier.reconcile(self._alerting.firing_events(self._clock())))

    async def resend_alerts(self) -> None:
        """Send the firing alerts to the Alertmanagers again (they expire otherwise)."""
        try:
            await self._live.notifier.resend()
        except Exception:  # a post failed past its retries; the next run tries again
            log.exception("re-sending alerts to Alertmanager failed")

    async def save_alert_state(self) -> None:
        """Write the machines with pending timers, windows or never saved (O(those))."""
        try:
            while await self._db.run(self._alerting.save_periodic):
                pass  # in chunks: ingest and reads queued meanwhile get the DB thread
        except Exception:  # the DB may be down; the machines stay marked for the next run
            log.exception("periodic alert state save failed")

    async def prune(self) -> None:
        """Drop samples, rollups, alert events and ended silences past their retentions."""
        config = self._config
        try:
            deleted = await self._db.run_bulk(
                lambda: self._storage.retention.prune(
                    self._clock(),
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
        """Bring the 1 m / 1 h rollups up to date (ingest leaves them to this call), one
        bounded pass at a time (skipped while the last one runs). On SQLite in steps on the
        DB thread: ingest, reads and saves queued meanwhile run in between. On
        MySQL/MariaDB the recompute runs beside the DB thread, which goes on ingesting."""
        with self._alone("roll_up") as alone:
            if not alone:
                return
            samples = self._storage.samples
            try:
                if self._storage.dialect == "mysql":
                    while (await self._db.beside(samples.roll_up_beside, self._db.call)).more:
                        pass
                else:
                    while (await self._db.run_bulk(samples.roll_up_step)).more:
                        pass
            except Exception:  # the DB may be down; the next run tries again
                log.exception("rollup maintenance failed")

    async def settle(self) -> None:
        """SQLite: move the rows ingest wrote to ``samples_recent`` into ``samples``, a
        range of machines per DB-thread call, ingest and reads running in between
        (``storage/settle.py``); skipped while the last pass runs."""
        with self._alone("settle") as alone:
            if not alone:
                return
            try:
                while (await self._db.run_bulk(self._storage.samples.settle_step)).more:
                    pass
            except Exception:  # the DB may be down; the next run tries again
                log.exception("moving recent samples failed")

    async def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file on a thread of its own
        (skipped while the last copy runs); nothing on MySQL/MariaDB, which is not
        scheduled."""
        with self._alone("checkpoint") as alone:
            if not alone:
                return
            try:
                await self._db.checkpoint(self._storage.checkpoint)
            except Exception:  # the DB may be down; the next run tries again
                log.exception("WAL checkpoint failed")

    async def reload_tokens(self) -> None:
        """Pick up API tokens created, rotated or revoked outside this server."""
        if self._tokens is None:
            return
        try:
            await self._db.run(self._tokens.reload)
        except Exception:  # the DB may be down: the tokens known so far stay in force
            log.exception("reloading the API tokens failed")

    def start(self) -> None:
        """Start every job on the running IOLoop (idempotent)."""
        if self._callbacks:
            return
        jobs: list[tuple[Callable[[], Coroutine[Any, Any, None]], float]] = [
            (self.tick, self._config.silence_check_seconds),
            (self.save_alert_state, self._config.alert_state_save_seconds),
            (self.prune, self._config.prune_interval_seconds),
            (self.roll_up, ROLL_UP_INTERVAL_SECONDS),
            (self.reload_tokens, self._config.tokens_reload_seconds),
        ]
        if self._storage.dialect == "sqlite":
            jobs.append((self.checkpoint, CHECKPOINT_INTERVAL_SECONDS))
            jobs.append((self.settle, SETTLE_INTERVAL_SECONDS))
        if self._live.notifier.alertmanager_urls:
            jobs.append((self.resend_alerts, self._config.alertmanager_resend_seconds))
            self._background.spawn(self.resend_alerts())  # the active set, at once after a start
        for job, seconds in jobs:
            callback = PeriodicCallback(self._spawner(job), seconds * 1000)
            callback.start()
            self._callbacks.append(callback)

    def _spawner(self, job: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
        return lambda: self._background.spawn(job())

    def stop(self) -> None:
        for callback in self._callbacks:
            callback.stop()
        self._callbacks = []
