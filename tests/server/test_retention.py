"""The server's hourly pruning honours every configured retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from srvmon_core.silences import SilenceMatchers, SilenceRequest
from srvmon_server.storage.tables import alert_events, rollup_1h, rollup_1m, silences
from tests.server.conftest import StartServer
from tests.server.harness import T0, FakeClock, make_batch
from tests.storage.factory import alert_event, raw


def _count(server: object, table: sa.FromClause) -> int:
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
    on_db_thread = server.context.db.run(server.storage.samples.roll_up, T0)
    asyncio.run_coroutine_threadsafe(on_db_thread, loop).result(30)
    stored = raw(server.storage)
    counts = [_count(server, table) for table in (stored, rollup_1m, rollup_1h)]
    assert counts == [4, 4, 4]
    asyncio.run_coroutine_threadsafe(server.context.periodic.prune(), loop).result(30)
    counts = [_count(server, table) for table in (stored, rollup_1m, rollup_1h)]
    assert counts == [1, 2, 3]


def test_prune_uses_the_alert_history_retention(
    start_server: StartServer, clock: FakeClock
) -> None:
    """alert history 2 d: events 3 and 1 day old leave 1; a silence that ended 3 days ago
    goes, one that ended 1 day ago stays; GET /alerts and /alerts/history still answer."""
    server = start_server(alert_history_retention_days=2)
    loop = server._loop
    assert loop is not None and server.context is not None
    storage = server.storage

    def fill() -> None:
        storage.history.append(
            [alert_event(T0 - timedelta(days=3)), alert_event(T0 - timedelta(days=1))]
        )
        for days in (3, 1):
            ends = T0 - timedelta(days=days)
            storage.silences.create(
                SilenceRequest(
                    matchers=SilenceMatchers(machine="h1"),
                    starts_at=ends - timedelta(hours=1),
                    ends_at=ends,
                )
            )

    asyncio.run_coroutine_threadsafe(server.context.db.run(fill), loop).result(30)
    assert (_count(server, alert_events), _count(server, silences)) == (2, 2)
    asyncio.run_coroutine_threadsafe(server.context.periodic.prune(), loop).result(30)
    assert (_count(server, alert_events), _count(server, silences)) == (1, 1)
    history = server.request("GET", "/api/v1/alerts/history?from=2026-11-20T00:00:00Z")
    assert history.status == 200, history.body
    assert [e["at"] for e in history.json()["events"]] == ["2026-11-24T10:00:00Z"]
    active = server.request("GET", "/api/v1/alerts")
    assert active.status == 200, active.body
    assert active.json() == {"alerts": []}
