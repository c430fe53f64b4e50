"""Driver-level SQL text for the ingest hot path, built once per engine.

Ingest runs two or three statements per batch; building them through SQLAlchemy
expressions costs more CPU than the database spends on them, so they are rendered here once
as plain SQL with positional placeholders (``?`` for sqlite3, ``%s`` for pymysql) and run
with ``Connection.exec_driver_sql`` and a list of tuples (the driver's ``executemany``;
pymysql folds an ``INSERT … VALUES`` executemany into one multi-row statement).

Raw inserts name only the metrics their rows carry (``metrics``, the sorted union over
them): a container fills 10 of the 28 metric columns, so naming all would send many more
NULL parameters. Hosts and containers go in one statement each (``Ingester._insert_rows``).
On SQLite the rows go to ``samples_recent`` first (``settle.py``). Column order
of every statement is fixed here and by the row builders in ``ingest.py`` (``raw_values``,
``inventory_values``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from attrs import frozen

from srvmon_server.storage import tables as t

INVENTORY_COLUMNS: tuple[str, ...] = (
    "id",
    "key",
    "kind",
    "host_id",
    "hostname",
    "name",
    "image",
    "labels",
    "state",
    "health",
    "restart_count",
    "first_seen_ms",
    "last_seen_ms",
    "last_received_ms",
    "latest_ts_ms",
    "latest_metrics",
    "latest_sample",
)
"""Columns of the inventory upsert, in the order ``inventory_values`` fills them."""

_INVENTORY_REFRESHED = (
    "hostname",
    "image",
    "labels",
    "state",
    "health",
    "restart_count",
    "last_seen_ms",
    "last_received_ms",
    "latest_metrics",
    "latest_sample",
)
"""What a newer sample replaces; ``latest_ts_ms`` comes last (MySQL assigns in order)."""


@frozen
class WriteSql:
    """The statements of one dialect."""

    refresh_inventory: str
    """Refresh a machine's inventory row unless it already holds a newer sample."""


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _placeholders(dialect: str, count: int) -> str:
    mark = "%s" if dialect == "mysql" else "?"
    return ", ".join([mark] * count)


def _insert_head(dialect: str, table: str, columns: list[str]) -> str:
    names = ", ".join(_quote(dialect, c) for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({_placeholders(dialect, len(columns))})"


@cache
def insert_samples(dialect: str, metrics: tuple[str, ...]) -> str:
    """Insert raw rows carrying ``metrics``, skipping (machine_id, ts_ms) already present.

    The rowcount is the number of rows inserted. Parameters: machine_id, ts_ms, one value
    per metric in ``metrics`` order; the other metric columns stay NULL. MySQL: into
    ``samples``. SQLite: into ``samples_recent`` unless ``samples`` holds the row already
    (``settle.py`` moves the rows on).
    """
    columns = ["machine_id", "ts_ms", *(t.raw_column(m) for m in metrics)]
    if dialect == "mysql":
        head = _insert_head(dialect, "samples", columns)
        return head.replace("INSERT INTO", "INSERT IGNORE INTO", 1)
    names = ", ".join(_quote(dialect, c) for c in columns)
    values = ", ".join(f"?{n}" for n in range(1, len(columns) + 1))
    return (
        f"INSERT INTO samples_recent ({names}) SELECT {values} WHERE NOT EXISTS "
        "(SELECT 1 FROM samples WHERE machine_id = ?1 AND ts_ms = ?2) ON CONFLICT DO NOTHING"
    )


@cache
def insert_samples_head(metrics: tuple[str, ...]) -> str:
    """MySQL: ``INSERT IGNORE INTO samples (machine_id, ts_ms, <metrics>) VALUES `` (the
    rows follow as literals, see :func:`numeric_rows`)."""
    columns = ", ".join(
        _quote("mysql", c) for c in ("machine_id", "ts_ms", *map(t.raw_column, metrics))
    )
    return f"INSERT IGNORE INTO samples ({columns}) VALUES "


def numeric_rows(rows: Iterable[tuple[int | float | None, ...]]) -> str:
    """Rows of numbers as SQL value lists: ``(1,1700000000000,12.5,NULL),(…)``.

    Only for values that are ints, finite floats (the codec and the schema refuse anything
    else) or None: their ``repr`` is a valid SQL literal (``1e-07`` included), and "None"
    can appear in it only as a value. pymysql would escape each value in Python (most of
    the cost of a raw insert); rendering whole tuples is done in C.
    """
    return ",".join(map(repr, rows)).replace("None", "NULL")


def _inventory_refresh(dialect: str) -> str:
    """MySQL: one multi-row upsert on the (existing) id; SQLite: an UPDATE per row."""
    if dialect == "mysql":
        head = _insert_head(dialect, "machines", list(INVENTORY_COLUMNS))
        newer = "VALUES(latest_ts_ms) >= latest_ts_ms"
        quoted = [_quote(dialect, c) for c in _INVENTORY_REFRESHED]
        assignments = [f"{c} = IF({newer}, VALUES({c}), {c})" for c in quoted]
        assignments.append("latest_ts_ms = GREATEST(latest_ts_ms, VALUES(latest_ts_ms))")
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(assignments)}"
    # sqlite3 runs an executemany in process (no round trips): a plain UPDATE per row
    # is as fast as an upsert. Parameters: the refreshed columns, latest_ts_ms, id, ts.
    sets = ", ".join(f"{_quote(dialect, c)} = ?" for c in (*_INVENTORY_REFRESHED, "latest_ts_ms"))
    return f"UPDATE machines SET {sets} WHERE id = ? AND latest_ts_ms <= ?"


def write_sql(dialect: str) -> WriteSql:
    """The fixed ingest statements for ``sqlite`` or ``mysql``."""
    return WriteSql(refresh_inventory=_inventory_refresh(dialect))
