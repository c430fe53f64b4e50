"""Retention: delete old rows in small, separate transactions.

For raw rows and rollups each batch is one machine's oldest ``batch_rows`` rows, found
through the primary key (machine_id, ts); for alert events and silences it is the oldest
``batch_rows`` rows by (time, primary key). A batch locks little and ingest waits at most
one short delete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from srvmon_server.storage import tables as t

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

    Events are history only: the live alert state is in ``alert_state``, never pruned.
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
