"""The server's hourly pruning honours every configured retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from srvmon_server.storage.tables import rollup_1h, rollup_1m, samples
from tests.server.conftest import StartServer
from tests.server.harness import T0, FakeClock, make_batch


def _count(server: object, table: sa.Table) -> int:
    engine = server.storage.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_prune_uses_the_raw_and_rollup_retentions(
    start_server: StartServer, clock: FakeClock
) -> None:
    """raw 1 d, 1 m rollups 2 d, 1 h rollups 3 d: samples 0.5, 1.5, 2.5 and 3.5 days old
    leave 1 raw row, 2 one-minute buckets and 3 one-hour buckets."""
    server = start_server(
        raw_retention_days=1, rollup_1m_retention_days=2, rollup_1h_retention_days=3
    )
    for days in (3.5, 2.5, 1.5, 0.5):
        response = server.ingest(make_batch(at=T0 - timedelta(days=days)))
        assert response.status == 200, response.body
    loop = server._loop
    assert loop is not None and server.context is not None
    on_db_thread = server.context.run_db(server.storage.roll_up, T0)
    asyncio.run_coroutine_threadsafe(on_db_thread, loop).result(30)
    assert (_count(server, samples), _count(server, rollup_1m), _count(server, rollup_1h)) == (
        4,
        4,
        4,
    )
    asyncio.run_coroutine_threadsafe(server.context.prune(), loop).result(30)
    assert (_count(server, samples), _count(server, rollup_1m), _count(server, rollup_1h)) == (
        1,
        2,
        3,
    )
