"""``Storage``: the one object that owns the database. Handlers never build SQL.

Thread-safety: a Storage is NOT safe for concurrent calls. The server runs every call on
one worker thread (or otherwise serializes them). It may be opened on one thread and used
on another. Several processes may share one MariaDB database; SQLite allows one writer
process at a time (WAL lets readers in other processes proceed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from srvmon_core.schema import Batch
from srvmon_server.storage import alerts
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import from_ms, to_ms
from srvmon_server.storage.engine import create_engine, parse_url, translated
from srvmon_server.storage.errors import StorageError, StorageUnavailable
from srvmon_server.storage.ingest import Ingester
from srvmon_server.storage.migrations import ensure_schema
from srvmon_server.storage.prune import (
    OnBatch,
    prune_alert_events,
    prune_silences,
    prune_table,
)
from srvmon_server.storage.records import IngestResult, MachineRecord, Series
from srvmon_server.storage.rollup import RollupResult, ensure_progress, read_watermark_of, roll_up
from srvmon_server.storage.series import query_series

Clock = Callable[[], datetime]

RAW_RETENTION = timedelta(days=7)
ROLLUP_1M_RETENTION = timedelta(days=90)
ROLLUP_1H_RETENTION = timedelta(days=730)
ALERT_HISTORY_RETENTION = timedelta(days=365)
INVENTORY_FLUSH = timedelta(seconds=5)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _record(row: sa.Row[Any]) -> MachineRecord:
    return MachineRecord(
        key=row.key,
        kind=row.kind,
        host_id=row.host_id,
        hostname=row.hostname,
        name=row.name,
        image=row.image,
        labels=json.loads(row.labels),
        state=row.state,
        health=row.health,
        restart_count=None if row.restart_count is None else int(row.restart_count),
        first_seen=from_ms(int(row.first_seen_ms)),
        last_seen=from_ms(int(row.last_seen_ms)),
        last_received=None if row.last_received_ms is None else from_ms(int(row.last_received_ms)),
        metrics=json.loads(row.latest_metrics),
    )


_MACHINE_COLUMNS = [c for c in t.machines.c if c.name != "latest_sample"]


class Storage:
    """The storage gateway. Create with :meth:`open`; every method is synchronous."""

    def __init__(
        self, engine: sa.Engine, where: str, clock: Clock, *, inventory_flush_ms: int = 0
    ) -> None:
        self._engine = engine
        self._where = where
        self._clock = clock
        self._ingester = Ingester(engine, inventory_flush_ms=inventory_flush_ms)
        self.upgraded_from: int = 0
        """Schema version found at open (0: the database was new)."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock | None = None,
        inventory_flush: timedelta = INVENTORY_FLUSH,
    ) -> Storage:
        """Connect, create or upgrade the schema; raise StorageError / StorageUnavailable.

        ``inventory_flush``: how long a machine's inventory row (``latest_sample``,
        ``last_seen``, …) may lag its newest stored sample; this process's own reads never
        see the lag (they flush first). Zero writes it in every ingest transaction.
        """
        if inventory_flush < timedelta(0):
            raise StorageError(f"inventory_flush must be >= 0, got {inventory_flush}")
        parsed = parse_url(url)
        where = parsed.render_as_string(hide_password=True)
        engine = create_engine(parsed)
        try:
            with translated("open", where):
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                found = ensure_schema(engine)
                with engine.begin() as conn:
                    ensure_progress(conn)
        except BaseException:
            engine.dispose()
            raise
        flush_ms = int(inventory_flush.total_seconds() * 1000)
        storage = cls(engine, where, clock or _utc_now, inventory_flush_ms=flush_ms)
        storage.upgraded_from = found
        return storage

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``mysql``."""
        return str(self._engine.dialect.name)

    @property
    def engine(self) -> sa.Engine:
        """The engine, for benchmarks and tests only; application code uses the methods."""
        return self._engine

    def close(self) -> None:
        """Write what waits for the inventory (if the DB answers), then disconnect."""
        try:
            self.flush_inventory()
        except StorageError:
            pass  # raw samples are stored; the next sample of each machine refreshes its row
        finally:
            self._engine.dispose()

    def flush_inventory(self) -> None:
        """Write each machine's newest stored sample to its inventory row now (the reads
        and ``roll_up`` call this; see ``inventory.py``)."""
        with translated("flush_inventory", self._where):
            self._ingester.flush_inventory()

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    def ping(self) -> float:
        """Seconds a ``SELECT 1`` took; raise StorageUnavailable when the DB does not answer."""
        began = time.perf_counter()
        try:
            with translated("ping", self._where), self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except StorageUnavailable:
            raise
        except StorageError as error:
            raise StorageUnavailable(str(error)) from None
        return time.perf_counter() - began

    # --- metrics -------------------------------------------------------------------------

    def ingest(self, batch: Batch, received_at: datetime) -> IngestResult:
        """Store one batch; committed when this returns. Replays store 0 and count duplicates."""
        with translated("ingest", self._where):
            return self._ingester.ingest(batch, received_at)

    def ingest_many(self, batches: Sequence[Batch], received_at: datetime) -> list[IngestResult]:
        """Store many batches in ONE transaction (committed when this returns); one result
        per batch, in order, with exact ``stored``/``duplicates`` counts as ``ingest`` gives.

        The fast path inserts the raw rows of all batches in one statement and refreshes
        each machine's inventory from its newest sample; any duplicate sends the whole call
        down the per-batch careful path (still one transaction).
        """
        with translated("ingest_many", self._where):
            return self._ingester.ingest_many(batches, received_at)

    def roll_up(self, now: datetime | None = None) -> RollupResult:
        """Fold every closed minute (ended 10 s before ``now``, default: the clock) into the
        1 m and 1 h rollups, recomputing them from raw rows; idempotent.

        Ingest does not maintain rollups; the server calls this every few seconds on its DB
        thread and ``prune`` calls it before deleting raw rows. ``series`` is exact without
        it (it reads the not yet rolled-up tail from raw rows); only samples that arrived
        late for an already rolled-up minute wait for the next call. See ``rollup.py``.
        """
        now_ms = self._now_ms() if now is None else to_ms(now)
        self.flush_inventory()
        with translated("roll_up", self._where):
            result = roll_up(self._engine, now_ms)
        self._ingester.rolled_up(result.exact_below_ms)
        return result

    def machines(self) -> list[MachineRecord]:
        """Every host and container ever seen, hosts first, then by key."""
        self.flush_inventory()
        with translated("machines", self._where), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_MACHINE_COLUMNS).order_by(t.machines.c.kind.desc(), t.machines.c.key)
            ).all()
        return [_record(row) for row in rows]

    def machine(self, key: str) -> MachineRecord | None:
        self.flush_inventory()
        with translated("machine", self._where), self._engine.connect() as conn:
            row = conn.execute(sa.select(*_MACHINE_COLUMNS).where(t.machines.c.key == key)).first()
        return None if row is None else _record(row)

    def latest_sample(self, key: str) -> dict[str, Any] | None:
        """The newest stored sample (unstructured) with its ``timestamp``, or None."""
        self.flush_inventory()
        with translated("latest_sample", self._where), self._engine.connect() as conn:
            body = conn.execute(
                sa.select(t.machines.c.latest_sample).where(t.machines.c.key == key)
            ).scalar()
        return None if body is None else dict(json.loads(body))

    def series(
        self, key: str, metric: str, start: datetime, end: datetime, max_points: int = 1000
    ) -> Series:
        """At most ``max_points`` points of one metric; see ``series.py`` for tier choice."""
        with translated("series", self._where), self._engine.connect() as conn:
            machine_id = conn.execute(
                sa.select(t.machines.c.id).where(t.machines.c.key == key)
            ).scalar()
            return query_series(
                conn,
                None if machine_id is None else int(machine_id),
                metric,
                start=start,
                end=end,
                max_points=max_points,
            )

    # --- rules and alert state ------------------------------------------------------------

    def list_rules(self) -> list[dict[str, Any]]:
        with translated("list_rules", self._where), self._engine.connect() as conn:
            return alerts.list_rules(conn)

    def get_rule(self, rule_id: str) -> dict[str, Any] | None:
        with translated("get_rule", self._where), self._engine.connect() as conn:
            return alerts.get_rule(conn, rule_id)

    def put_rule(self, rule: dict[str, Any]) -> None:
        """Insert the rule, or replace the one with the same ``id`` (keeping its position)."""
        with translated("put_rule", self._where), self._engine.begin() as conn:
            alerts.put_rule(conn, rule)

    def delete_rule(self, rule_id: str) -> bool:
        with translated("delete_rule", self._where), self._engine.begin() as conn:
            return alerts.delete_rule(conn, rule_id)

    def seed_rules(self, rules: list[dict[str, Any]]) -> int:
        """Insert defaults on the first start only; return how many were inserted."""
        with translated("seed_rules", self._where), self._engine.begin() as conn:
            return alerts.seed_rules(conn, rules, self._now_ms())

    def load_alert_state(self) -> dict[str, Any] | None:
        with translated("load_alert_state", self._where), self._engine.connect() as conn:
            return alerts.load_alert_state(conn)

    def save_alert_state(self, state: dict[str, Any]) -> None:
        with translated("save_alert_state", self._where), self._engine.begin() as conn:
            alerts.save_alert_state(conn, state, self._now_ms())

    def append_alert_events(self, events: list[dict[str, Any]]) -> None:
        """Append events (validated first: all or none are stored)."""
        with translated("append_alert_events", self._where), self._engine.begin() as conn:
            alerts.append_alert_events(conn, events)

    def alert_history(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        machine: str | None = None,
        host: str | None = None,
        rule: str | None = None,
        severity: str | None = None,
        state: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events newest first and the cursor of the next page (None on the last page)."""
        with translated("alert_history", self._where), self._engine.connect() as conn:
            return alerts.alert_history(
                conn,
                start=start,
                end=end,
                machine=machine,
                host=host,
                rule=rule,
                severity=severity,
                state=state,
                limit=limit,
                cursor=cursor,
            )

    # --- silences -------------------------------------------------------------------------

    def list_silences(
        self, include_expired: bool = False, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        now_ms = self._now_ms() if now is None else to_ms(now)
        with translated("list_silences", self._where), self._engine.connect() as conn:
            return alerts.list_silences(conn, include_expired, now_ms)

    def create_silence(self, silence: dict[str, Any]) -> dict[str, Any]:
        """Store a silence and return it with its new ``id`` and normalized times."""
        with translated("create_silence", self._where), self._engine.begin() as conn:
            return alerts.create_silence(conn, silence, self._now_ms())

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        with translated("expire_silence", self._where), self._engine.begin() as conn:
            return alerts.expire_silence(conn, silence_id, to_ms(now))

    # --- retention ------------------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        *,
        raw_retention: timedelta = RAW_RETENTION,
        rollup_1m_retention: timedelta = ROLLUP_1M_RETENTION,
        rollup_1h_retention: timedelta = ROLLUP_1H_RETENTION,
        alert_history_retention: timedelta = ALERT_HISTORY_RETENTION,
        batch_rows: int = 5000,
        on_batch: OnBatch | None = None,
    ) -> int:
        """Delete data older than each retention, ``batch_rows`` per transaction.

        Rolls up first, and never deletes raw rows a roll-up has not yet covered.
        ``alert_history_retention`` applies to alert events (by when they happened) and to
        silences (by when they ended); the live alert state is never pruned.
        """
        if batch_rows < 1:
            raise StorageError(f"batch_rows must be >= 1, got {batch_rows}")
        now_ms = to_ms(now)
        self.roll_up(now)
        with translated("prune", self._where):
            covered = [v for v in read_watermark_of(self._engine) if v is not None]
        plan = [
            (t.samples, "ts_ms", raw_retention),
            (t.rollup_1m, "bucket_ms", rollup_1m_retention),
            (t.rollup_1h, "bucket_ms", rollup_1h_retention),
        ]
        deleted = 0
        with translated("prune", self._where):
            for table, column, keep in plan:
                cutoff = now_ms - int(keep.total_seconds() * 1000)
                if table is t.samples:
                    cutoff = min([cutoff, *covered]) if covered else cutoff
                deleted += prune_table(
                    self._engine,
                    table,
                    ts_column=column,
                    cutoff_ms=cutoff,
                    batch_rows=batch_rows,
                    on_batch=on_batch,
                )
            history_cutoff = now_ms - int(alert_history_retention.total_seconds() * 1000)
            for prune_history in (prune_alert_events, prune_silences):
                deleted += prune_history(
                    self._engine,
                    cutoff_ms=history_cutoff,
                    batch_rows=batch_rows,
                    on_batch=on_batch,
                )
        return deleted
