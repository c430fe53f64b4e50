"""Retention: delete old rows in small, separate transactions (``Retention.prune``).

For raw rows and rollups each batch is one machine's oldest ``batch_rows`` rows, found
through the primary key (machine_id, ts); for alert events and silences it is the oldest
``batch_rows`` rows by (time, primary key). A batch locks little and ingest waits at most
one short delete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from srvmon_server.storage import tables as t
from srvmon_server.storage.base import Database
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.errors import StorageError
from srvmon_server.storage.rollup import read_watermark_of
from srvmon_server.storage.samples import SampleStore
from srvmon_server.storage.settle import raw_tables

RAW_RETENTION = timedelta(days=7)
ROLLUP_1M_RETENTION = timedelta(days=90)
ROLLUP_1H_RETENTION = timedelta(days=730)
ALERT_HISTORY_RETENTION = timedelta(days=365)

OnBatch = Callable[[str, int], None]
"""Called after each committed delete with (table name, rows deleted)."""


def _at_or_before(columns: Sequence[sa.ColumnElement[Any]], bound: Sequence[Any]) -> Any:
    """``columns <= bound`` in lexicographic (row) order."""
    first, *rest = columns
    if not rest:
        return first <= bound[0]
    return sa.or_(first < bound[0], sa.and_(first == bound[0], _at_or_before(rest, bound[1:])))


def _delete_in_batches(
    engine: sa.Engine,
    table: sa.Table,
    *,
    where: Any,
    order: Sequence[sa.ColumnElement[Any]],
    batch_rows: int,
    on_batch: OnBatch | None,
) -> int:
    """Delete the rows matching ``where``, at most ``batch_rows`` per transaction, in
    ``order`` (unique over those rows; an index should serve it). Return how many went."""
    deleted = 0
    while True:
        with engine.begin() as conn:
            bound = conn.execute(
                sa.select(*order).where(where).order_by(*order).offset(batch_rows - 1).limit(1)
            ).first()
            limit = where if bound is None else sa.and_(where, _at_or_before(order, bound))
            count = conn.execute(sa.delete(table).where(limit)).rowcount
        if count:
            deleted += count
            if on_batch is not None:
                on_batch(table.name, count)
        if bound is None:
            return deleted


def prune_table(
    engine: sa.Engine,
    table: sa.Table,
    *,
    ts_column: str,
    cutoff_ms: int,
    batch_rows: int,
    on_batch: OnBatch | None,
) -> int:
    """Delete rows with ``ts_column < cutoff_ms``, machine by machine (each batch is one
    machine's oldest rows, through the primary key (machine_id, ts)); return how many went."""
    ts = table.c[ts_column]
    with engine.connect() as conn:
        machine_ids = [int(i) for i in conn.execute(sa.select(t.machines.c.id)).scalars()]
    return sum(
        _delete_in_batches(
            engine,
            table,
            where=sa.and_(table.c.machine_id == machine_id, ts < cutoff_ms),
            order=[ts],
            batch_rows=batch_rows,
            on_batch=on_batch,
        )
        for machine_id in machine_ids
    )


def prune_oldest(
    engine: sa.Engine,
    table: sa.Table,
    *,
    ts_column: str,
    cutoff_ms: int,
    batch_rows: int,
    on_batch: OnBatch | None,
) -> int:
    """Delete rows with ``ts_column < cutoff_ms``, oldest first; return how many went.

    For tables without a machine column (alert history, silences): each batch is the next
    ``batch_rows`` rows in (``ts_column``, primary key) order, found through the index on
    that time column (InnoDB secondary indexes carry the primary key).
    """
    ts = table.c[ts_column]
    (key,) = table.primary_key.columns
    return _delete_in_batches(
        engine,
        table,
        where=ts < cutoff_ms,
        order=[ts, key],
        batch_rows=batch_rows,
        on_batch=on_batch,
    )


def prune_alert_events(
    engine: sa.Engine, *, cutoff_ms: int, batch_rows: int, on_batch: OnBatch | None
) -> int:
    """Delete alert events that happened before ``cutoff_ms``, via the (at_ms, id) index.

    Events are history only: the live alert state has its own table, never pruned.
    """
    return prune_oldest(
        engine,
        t.alert_events,
        ts_column="at_ms",
        cutoff_ms=cutoff_ms,
        batch_rows=batch_rows,
        on_batch=on_batch,
    )


def prune_silences(
    engine: sa.Engine, *, cutoff_ms: int, batch_rows: int, on_batch: OnBatch | None
) -> int:
    """Delete silences that ended before ``cutoff_ms`` (active ones end later: they stay)."""
    return prune_oldest(
        engine,
        t.silences,
        ts_column="ends_at_ms",
        cutoff_ms=cutoff_ms,
        batch_rows=batch_rows,
        on_batch=on_batch,
    )


class Retention:
    """Deletes what is older than each retention; never the live alert state."""

    def __init__(self, db: Database, samples: SampleStore) -> None:
        self._db = db
        self._samples = samples

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
        silences (by when they ended). Among processes sharing a MySQL/MariaDB database
        (server replicas), one prunes at a time; the others skip (returning 0).
        """
        if batch_rows < 1:
            raise StorageError(f"batch_rows must be >= 1, got {batch_rows}")
        with self._db.try_exclusive("srvmon.prune") as mine:
            if not mine:  # another process sharing the database (a replica) prunes now
                return 0
            return self._prune(
                now,
                raw_retention=raw_retention,
                rollup_1m_retention=rollup_1m_retention,
                rollup_1h_retention=rollup_1h_retention,
                alert_history_retention=alert_history_retention,
                batch_rows=batch_rows,
                on_batch=on_batch,
            )

    def _prune(
        self,
        now: datetime,
        *,
        raw_retention: timedelta,
        rollup_1m_retention: timedelta,
        rollup_1h_retention: timedelta,
        alert_history_retention: timedelta,
        batch_rows: int,
        on_batch: OnBatch | None,
    ) -> int:
        now_ms = to_ms(now)
        self._samples.roll_up(now)
        engine = self._db.engine
        with self._db.guarded("prune"):
            covered = [v for v in read_watermark_of(engine) if v is not None]
        raw = raw_tables(self._db.dialect)
        plan = [
            *((table, "ts_ms", raw_retention) for table in raw),
            (t.rollup_1m, "bucket_ms", rollup_1m_retention),
            (t.rollup_1h, "bucket_ms", rollup_1h_retention),
        ]
        deleted = 0
        with self._db.guarded("prune"):
            for table, column, keep in plan:
                cutoff = now_ms - int(keep.total_seconds() * 1000)
                if table in raw:
                    cutoff = min([cutoff, *covered]) if covered else cutoff
                deleted += prune_table(
                    engine,
                    table,
                    ts_column=column,
                    cutoff_ms=cutoff,
                    batch_rows=batch_rows,
                    on_batch=on_batch,
                )
            history_cutoff = now_ms - int(alert_history_retention.total_seconds() * 1000)
            for prune_history in (prune_alert_events, prune_silences):
                deleted += prune_history(
                    engine, cutoff_ms=history_cutoff, batch_rows=batch_rows, on_batch=on_batch
                )
        return deleted
