"""Retention: delete old raw rows and rollups in small, separate transactions.

Each batch is one machine's oldest ``batch_rows`` rows, found through the primary key
(machine_id, ts), so a batch locks little and ingest waits at most one short delete.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from srvmon_server.storage import tables as t

OnBatch = Callable[[str, int], None]
"""Called after each committed delete with (table name, rows deleted)."""


def prune_table(
    engine: sa.Engine,
    table: sa.Table,
    *,
    ts_column: str,
    cutoff_ms: int,
    batch_rows: int,
    on_batch: OnBatch | None,
) -> int:
    """Delete rows with ``ts_column < cutoff_ms``; return how many went."""
    ts = table.c[ts_column]
    with engine.connect() as conn:
        machine_ids = [int(i) for i in conn.execute(sa.select(t.machines.c.id)).scalars()]
    deleted = 0
    for machine_id in machine_ids:
        while True:
            with engine.begin() as conn:
                bound = conn.execute(
                    sa.select(ts)
                    .where(table.c.machine_id == machine_id, ts < cutoff_ms)
                    .order_by(ts)
                    .offset(batch_rows - 1)
                    .limit(1)
                ).scalar()
                last = bound is None
                limit = ts < cutoff_ms if last else ts <= bound
                count = conn.execute(
                    sa.delete(table).where(table.c.machine_id == machine_id, limit)
                ).rowcount
            if count:
                deleted += count
                if on_batch is not None:
                    on_batch(table.name, count)
            if last:
                break
    return deleted
