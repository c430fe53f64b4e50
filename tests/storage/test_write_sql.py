"""The SQLite statement sizes of the write path (``write_sql.sqlite_chunk_sizes``)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from srvmon_server.storage import IngestResult, Storage
from srvmon_server.storage.write_sql import (
    SQLITE_MAX_PARAMETERS,
    SQLITE_MAX_ROWS,
    insert_samples,
    sqlite_chunk_sizes,
    sqlite_chunks,
)
from tests.storage.factory import T0, batch, raw, seconds


@pytest.mark.parametrize(
    ("rows", "width", "sizes"),
    [
        (0, 12, []),
        (1, 12, [1]),
        (7, 12, [4, 2, 1]),
        (1024, 12, [1024]),
        (15_500, 12, [1024] * 15 + [128, 8, 4]),
        (3000, 40, [512] * 5 + [256, 128, 32, 16, 8]),
        (3, 40_000, [1, 1, 1]),
    ],
)
def test_chunk_sizes_cover_every_row_in_powers_of_two(
    rows: int, width: int, sizes: list[int]
) -> None:
    """Full chunks of the largest power of two that fits the parameter limit (and at
    most 1,024 rows), then the remainder's binary digits: a handful of statement texts
    per shape of row, each prepared once."""
    assert sqlite_chunk_sizes(rows, width) == sizes
    assert sum(sizes) == rows
    assert all(size * width <= max(SQLITE_MAX_PARAMETERS, width) for size in sizes)
    assert all(size <= SQLITE_MAX_ROWS for size in sizes)


def test_chunks_carry_the_rows_in_order_and_sqlite_accepts_the_largest() -> None:
    """The pairs flatten the rows in order, and a statement of the largest size runs on
    SQLite's default parameter limit (a connection lowered to 32,766)."""
    names = ("cpu_percent", "memory_percent")
    rows = [(i, 1000 * i, float(i), float(-i)) for i in range(1030)]
    chunks = list(sqlite_chunks(rows, 4, lambda n: insert_samples(names, n)))
    assert [len(params) // 4 for _, params in chunks] == [1024, 4, 2]
    assert [p for _, params in chunks for p in params] == [v for row in rows for v in row]
    db = sqlite3.connect(":memory:")
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_MAX_PARAMETERS)
    db.execute(
        "CREATE TABLE samples (machine_id INTEGER, ts_ms INTEGER, m_cpu_percent REAL,"
        " m_memory_percent REAL, PRIMARY KEY (machine_id, ts_ms))"
    )
    db.execute("CREATE TABLE samples_recent AS SELECT * FROM samples WHERE 0")
    db.execute("CREATE UNIQUE INDEX recent_key ON samples_recent (machine_id, ts_ms)")
    inserted = sum(db.execute(sql, params).rowcount for sql, params in chunks)
    assert inserted == 1030
    assert db.execute("SELECT SUM(m_cpu_percent), COUNT(*) FROM samples_recent").fetchone() == (
        sum(range(1030)),
        1030,
    )


def _rows_in(statement: str) -> int:
    return statement.count("(?")


def _counts(results: list[IngestResult]) -> list[tuple[int, int]]:
    return [(r.stored, r.duplicates) for r in results]


def test_ingest_takes_many_rows_per_statement_and_still_counts_each(
    sqlite_storage: Storage,
) -> None:
    """Never one step per row (sqlite3 lets go of the interpreter lock at every step):
    1,100 containers go in statements of 1,024, 64, 8 and 4 rows, the host in one of its
    own. Each row is stored once; a replay of the call, and a row seen again in a later
    statement of the same call, count exactly as duplicates; the inventory, written in
    statements of many rows too, holds every machine's newest sample."""
    storage = sqlite_storage
    inserts: list[str] = []
    refreshes: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "INTO samples_recent" in statement:
            inserts.append(statement)
        if statement.startswith("UPDATE machines SET"):
            refreshes.append(statement)

    sa.event.listen(storage.engine, "before_cursor_execute", note)
    try:
        first = batch(T0, containers=1100)
        assert _counts(storage.samples.ingest_many([first], T0)) == [(1101, 0)]
        sizes = [_rows_in(s) for s in inserts]
        inserts.clear()
        assert _counts(storage.samples.ingest_many([first], T0)) == [(0, 1101)]
        later = batch(T0 + seconds(1), cpu=77.0, containers=1100)
        assert _counts(storage.samples.ingest_many([later, later], T0 + seconds(1))) == [
            (1101, 0),
            (0, 1101),
        ]
        storage.samples.flush_inventory()
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", note)
    assert sizes == [1, 1024, 64, 8, 4]
    assert [_rows_in(s) for s in refreshes] == [1024, 64, 8, 4, 1]
    with storage.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(raw(storage))).scalar()
    assert stored == 2 * 1101
    newest = storage.samples.latest_sample("h1:c1099")
    assert newest is not None
    assert newest["timestamp"] == "2024-05-01T12:00:01Z"
    host = storage.samples.machine("h1")
    assert host is not None
    assert host.metrics["cpu_percent"] == 77.0
