"""On MySQL the raw rows are sent as numeric literals (not escaped one by one by the
driver): every finite value, tiny, huge or inexact, comes back bit for bit."""

from __future__ import annotations

import sqlalchemy as sa

from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.write_sql import numeric_rows
from tests.storage.factory import T0, raw, seconds

AWKWARD = [0.1 + 0.2, 1e-07, 5e-324, 1.7976931348623157e308, 123456789.00000001, 0.0, 2.5e16]


def test_numeric_rows_renders_sql_literals() -> None:
    """Ints, floats in every notation and None as NULL, one parenthesised list per row."""
    assert numeric_rows([(1, 1700000000000, 12.5, None), (2, 5, 1e-07, 2.5e16)]) == (
        "(1, 1700000000000, 12.5, NULL),(2, 5, 1e-07, 2.5e+16)"
    )


def test_awkward_values_round_trip_exactly(storage: Storage) -> None:
    """Each awkward float stored as a container's cpu (and the host's load) reads back
    equal, on SQLite and MariaDB; absent figures stay NULL."""
    batches = [
        Batch(
            host_id="h1",
            hostname="h1",
            timestamp=T0 + seconds(i),
            host=HostSample(
                cpu_percent=1.0,
                load_1=value,
                load_5=0.0,
                load_15=0.0,
                memory_total_bytes=2**62,
                memory_used_bytes=0,
                memory_available_bytes=2**62,
                memory_percent=0.0,
            ),
            containers=(ContainerSample(id="c", name="c", cpu_percent=value),),
        )
        for i, value in enumerate(AWKWARD)
    ]
    results = storage.samples.ingest_many(batches, T0)
    assert [r.stored for r in results] == [2] * len(AWKWARD)
    stored = raw(storage).c
    with storage.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                stored.m_cpu_percent,
                stored.m_load_1,
                stored.m_memory_available_bytes,
                stored.m_pids,
            )
            .join(t.machines, t.machines.c.id == stored.machine_id)
            .where(t.machines.c.key == "h1:c")
            .order_by(stored.ts_ms)
        ).all()
        hosts = conn.execute(
            sa.select(stored.m_load_1, stored.m_memory_available_bytes)
            .join(t.machines, t.machines.c.id == stored.machine_id)
            .where(t.machines.c.key == "h1")
            .order_by(stored.ts_ms)
        ).all()
    assert [row[0] for row in rows] == AWKWARD
    assert {row[1:] for row in rows} == {(None, None, None)}
    assert [row[0] for row in hosts] == AWKWARD
    assert {row[1] for row in hosts} == {float(2**62)}
