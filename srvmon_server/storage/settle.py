"""SQLite's recent rows: written in arrival order, moved into ``samples`` in machine order.

``samples`` is keyed by (machine_id, ts_ms), so each machine's newest rows sit on an index
page of their own. Inserted straight there, one second of a large fleet dirties about one
page per machine, and every commit writes each dirtied page to the log whole: at 1,000
hosts x 30 containers, 150 MB of log a second once the history has spread the machines
over their own pages (``bench/bench_sqlite_history.py``). So on SQLite ingest writes into
``samples_recent`` (a few seconds of rows, a small index), after checking that the row is
not in ``samples`` already (idempotency holds across both tables), and ``settle_step``
moves those rows into ``samples`` a range of machines at a time: each page of ``samples``
is then written once per move, not once per second.

A row is in exactly one of the two tables at any commit (a move inserts and deletes in one
transaction). Every reader of raw rows reads both through :func:`raw_rows`. MySQL/MariaDB
insert into ``samples`` directly (InnoDB logs row changes, not whole pages);
``samples_recent`` exists there and stays empty.
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from attrs import frozen

from srvmon_server.storage import tables as t

SETTLE_CHUNK_ROWS = 50_000
"""About how many recent rows one step moves (a range of machines; one transaction)."""


@frozen
class SettleStep:
    """What one ``settle_step`` did."""

    moved: int
    """Rows moved into ``samples``."""
    next_machine_id: int | None
    """Where the next step starts; None: this pass reached the last machine."""

    @property
    def more(self) -> bool:
        """The pass goes on: call again."""
        return self.next_machine_id is not None


def raw_tables(dialect: str) -> tuple[sa.Table, ...]:
    """The tables raw rows are stored in: ``samples``, and on SQLite ``samples_recent``.
    ``dialect``: ``sqlite``, or a MySQL/MariaDB name."""
    return (t.samples, t.samples_recent) if dialect == "sqlite" else (t.samples,)


def raw_rows(dialect: str) -> sa.FromClause:
    """Every stored raw row: ``samples`` and, on SQLite, ``samples_recent`` (same columns).
    ``dialect``: ``sqlite``, or a MySQL/MariaDB name."""
    return _both() if dialect == "sqlite" else t.samples


@cache
def _both() -> sa.Subquery:
    return sa.union_all(sa.select(t.samples), sa.select(t.samples_recent)).subquery("raw")


@cache
def _move_sql(bounded: bool) -> tuple[str, str]:
    names = ", ".join(f'"{c.name}"' for c in t.samples.c)
    where = "machine_id >= :lo" + (" AND machine_id < :hi" if bounded else "")
    insert = (
        f"INSERT INTO samples ({names}) SELECT {names} FROM samples_recent WHERE {where} "
        "ORDER BY machine_id, ts_ms ON CONFLICT DO NOTHING"
    )
    return insert, f"DELETE FROM samples_recent WHERE {where}"


def settle_step(conn: sa.Connection, start_id: int, rows: int = SETTLE_CHUNK_ROWS) -> SettleStep:
    """Move the recent rows of machines ``start_id`` up to about ``rows`` rows further (in
    ``conn``'s transaction): inserted into ``samples`` in key order, deleted from
    ``samples_recent``. A row ``samples`` already holds is dropped (ingest checks for that
    before it writes, so only two processes writing one file could race to it)."""
    hi = conn.execute(
        sa.text(
            "SELECT machine_id FROM samples_recent WHERE machine_id >= :lo "
            "ORDER BY machine_id, ts_ms LIMIT 1 OFFSET :rows"
        ),
        {"lo": start_id, "rows": rows},
    ).scalar()
    bound = None if hi is None else max(int(hi), start_id + 1)
    insert, delete = _move_sql(bound is not None)
    params = {"lo": start_id} if bound is None else {"lo": start_id, "hi": bound}
    conn.execute(sa.text(insert), params)
    moved = int(conn.execute(sa.text(delete), params).rowcount)
    return SettleStep(moved=moved, next_machine_id=bound)
