"""Driver-level SQL text for the ingest hot path, built once per engine.

Ingest runs two or three statements per batch; building them through SQLAlchemy
expressions costs more CPU than the database spends on them, so they are rendered here once
as plain SQL with positional placeholders (``?`` for sqlite3, ``%s`` for pymysql) and run
with ``Connection.exec_driver_sql``.

Many rows go in few statements. MySQL: multi-row ``INSERT … VALUES`` with the numbers as
literals (:func:`numeric_rows`). SQLite: multi-row statements over a ``VALUES`` list of
placeholders, up to :data:`SQLITE_MAX_ROWS` rows each (:func:`sqlite_chunks`). Not
``executemany``: sqlite3 lets go of the interpreter lock around every row's step and must
then wait for it again, and while the decode thread or the IOLoop runs Python that wait
lasts until the interpreter switches threads (up to 5 ms). An ``executemany`` of 15,500
rows took 14 to 117 s beside a busy thread instead of 60 to 100 ms alone; statements of up
to 1,024 rows take 0.8 to 1.1 s there (``bench/bench_sqlite_convoy.py``,
``docs/benchmarks-server.md``).

Raw inserts name only the metrics their rows carry (``metrics``, the sorted union over
them): a container fills 10 of the 28 metric columns, so naming all would send many more
NULL parameters. Hosts and containers go in one statement each (``Ingester._insert_rows``).
On SQLite the rows go to ``samples_recent`` first (``settle.py``). Column order
of every statement is fixed here and by the row builders in ``ingest.py`` (``raw_values``,
``inventory_values``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from itertools import chain
from typing import Any

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


def _quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _placeholders(dialect: str, count: int) -> str:
    mark = "%s" if dialect == "mysql" else "?"
    return ", ".join([mark] * count)


def _insert_head(dialect: str, table: str, columns: list[str]) -> str:
    names = ", ".join(_quote(dialect, c) for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({_placeholders(dialect, len(columns))})"


SQLITE_MAX_PARAMETERS = 32_766
"""Bound parameters one SQLite statement may take (``SQLITE_MAX_VARIABLE_NUMBER``, the
default since SQLite 3.32; builds may allow more, none of 3.32 or later allows less)."""
SQLITE_MAX_ROWS = 1024
"""Rows per SQLite statement at most: a statement's text and its prepared program grow
with its rows (preparing 1,024 rows takes a few milliseconds, once per connection)."""


def sqlite_chunk_sizes(rows: int, width: int) -> list[int]:
    """How many rows each statement takes when ``rows`` rows of ``width`` parameters go in
    multi-row statements: full chunks of the largest power of two allowed, then the
    remainder's binary digits, largest first. Every size is a power of two, so sqlite3's
    statement cache holds a few texts per shape of row, each prepared once."""
    fits = max(1, SQLITE_MAX_PARAMETERS // max(1, width))
    largest = min(SQLITE_MAX_ROWS, 1 << (fits.bit_length() - 1))
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    sizes.extend(1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1)
    return sizes


def sqlite_chunks(
    rows: Sequence[tuple[Any, ...]], width: int, sql: Callable[[int], str]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``(statement, parameters)`` pairs that take ``rows`` (each ``width`` parameters) in
    multi-row statements; ``sql(n)`` is the statement text for ``n`` rows."""
    start = 0
    for size in sqlite_chunk_sizes(len(rows), width):
        yield sql(size), tuple(chain.from_iterable(rows[start : start + size]))
        start += size


def _values_list(width: int, rows: int) -> str:
    row = "(" + ", ".join(["?"] * width) + ")"
    return ", ".join([row] * rows)


@cache
def insert_samples(metrics: tuple[str, ...], rows: int) -> str:
    """SQLite: insert ``rows`` raw rows carrying ``metrics`` into ``samples_recent``,
    skipping any (machine_id, ts_ms) that ``samples`` or ``samples_recent`` holds already
    (``settle.py`` moves the rows on).

    The rowcount is the number of rows inserted. Parameters, row after row: machine_id,
    ts_ms, one value per metric in ``metrics`` order; the other metric columns stay NULL.
    """
    columns = ["machine_id", "ts_ms", *(t.raw_column(m) for m in metrics)]
    names = ", ".join(_quote("sqlite", c) for c in columns)
    return (
        f"INSERT INTO samples_recent ({names}) SELECT * FROM "
        f"(VALUES {_values_list(len(columns), rows)}) AS v WHERE NOT EXISTS "
        "(SELECT 1 FROM samples AS s WHERE s.machine_id = v.column1 AND s.ts_ms = v.column2)"
        " ON CONFLICT DO NOTHING"
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


@cache
def _inventory_upsert_mysql() -> str:
    """MySQL: a multi-row upsert on the (existing) id that keeps a newer sample."""
    head = _insert_head("mysql", "machines", list(INVENTORY_COLUMNS))
    newer = "VALUES(latest_ts_ms) >= latest_ts_ms"
    quoted = [_quote("mysql", c) for c in _INVENTORY_REFRESHED]
    assignments = [f"{c} = IF({newer}, VALUES({c}), {c})" for c in quoted]
    assignments.append("latest_ts_ms = GREATEST(latest_ts_ms, VALUES(latest_ts_ms))")
    return f"{head} ON DUPLICATE KEY UPDATE {', '.join(assignments)}"


INVENTORY_SQLITE_WIDTH = len(_INVENTORY_REFRESHED) + 3
"""Parameters per row of :func:`refresh_inventory_sqlite`."""


@cache
def refresh_inventory_sqlite(rows: int) -> str:
    """SQLite: refresh ``rows`` inventory rows in one UPDATE … FROM a ``VALUES`` list.
    Parameters, row after row: the refreshed columns, latest_ts_ms, id, the sample's ts
    (a row that already holds a newer sample is left alone)."""
    refreshed = (*_INVENTORY_REFRESHED, "latest_ts_ms")
    sets = ", ".join(f"{_quote('sqlite', c)} = v.column{n}" for n, c in enumerate(refreshed, 1))
    ident, ts = len(refreshed) + 1, len(refreshed) + 2
    return (
        f"UPDATE machines SET {sets} FROM (VALUES {_values_list(INVENTORY_SQLITE_WIDTH, rows)})"
        f" AS v WHERE machines.id = v.column{ident} AND machines.latest_ts_ms <= v.column{ts}"
    )


def refresh_inventory(
    dialect: str, rows: Sequence[tuple[Any, ...]]
) -> Iterator[tuple[str, Sequence[Any]]]:
    """``(statement, parameters)`` pairs that refresh the inventory rows ``rows`` (built by
    ``inventory.inventory_values``), each unless it already holds a newer sample. MySQL:
    one upsert run as an ``executemany`` (pymysql folds it into one multi-row statement).
    SQLite: :func:`refresh_inventory_sqlite` in statements of many rows."""
    if dialect == "mysql":
        yield _inventory_upsert_mysql(), rows
        return
    yield from sqlite_chunks(rows, INVENTORY_SQLITE_WIDTH, refresh_inventory_sqlite)
