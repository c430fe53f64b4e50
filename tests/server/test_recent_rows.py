"""The server's periodic move of SQLite's recent rows (``Periodic.settle``), and the move
at a clean stop (``Storage.close``): what HTTP ingest stored ends in ``samples``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from tests.server.conftest import StartServer
from tests.server.harness import T0, make_batch


def counts(storage: Storage) -> tuple[int, int]:
    """Rows in (``samples_recent``, ``samples``)."""
    with storage.engine.connect() as conn:
        recent, settled = (
            int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in (t.samples_recent, t.samples)
        )
    return recent, settled


def test_the_periodic_move_and_a_clean_stop_leave_every_row_in_samples(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Three batches of 1 host + 2 containers over HTTP wait as 9 recent rows; the periodic
    job moves them; three more wait until the server stops, which moves them too."""
    server = start_server()
    containers = (("web", 1.0), ("db", 2.0))

    def ingest(first: int) -> None:
        for second in range(first, first + 3):
            batch = make_batch(at=T0 + timedelta(seconds=second), containers=containers)
            assert server.ingest(batch).status == 200

    ingest(0)
    assert counts(server.storage) == (9, 0)
    loop = server._loop
    assert loop is not None and server.context is not None
    asyncio.run_coroutine_threadsafe(server.context.periodic.settle(), loop).result(30)
    assert counts(server.storage) == (0, 9)
    ingest(3)
    assert counts(server.storage) == (9, 9)
    server.stop()
    server.storage.close()
    reopened = Storage.open(f"sqlite:///{tmp_path / 'srvmon.db'}")
    try:
        assert counts(reopened) == (0, 18)
    finally:
        reopened.close()
