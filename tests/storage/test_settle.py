"""SQLite's recent rows (``storage/settle.py``): ingest writes to ``samples_recent``, a
move puts them in ``samples``; a row is in one table only, and idempotency, series and
roll-ups see both. On MariaDB ingest writes ``samples`` and nothing moves."""

from __future__ import annotations

import sqlalchemy as sa

from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.settle import settle_step
from tests.storage.factory import T0, batch, seconds
from tests.storage.test_rollup import every_bucket, expected_from_raw


def count(storage: Storage, table: sa.Table) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def in_both(storage: Storage) -> int:
    """(machine, ts) pairs stored in both raw tables: never any."""
    s, r = t.samples.c, t.samples_recent.c
    with storage.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(
            t.samples.join(t.samples_recent, (s.machine_id == r.machine_id) & (s.ts_ms == r.ts_ms))
        )
        return int(conn.execute(query).scalar_one())


def cpu_points(storage: Storage, key: str) -> list[tuple[float, float, float, float]]:
    return storage.samples.series(key, "cpu_percent", T0, T0 + seconds(60), max_points=100).points


def test_rows_wait_in_recent_and_move_into_samples_unchanged(storage: Storage) -> None:
    """Five batches of 1 host + 2 containers: on SQLite 15 recent rows, moved whole into
    ``samples`` by ``settle``; the series read the same before and after."""
    for i in range(5):
        storage.samples.ingest(batch(T0 + seconds(i), cpu=10.0 + i), T0)
    before = {key: cpu_points(storage, key) for key in ("h1", "h1:c0", "h1:c1")}
    assert [p[1] for p in before["h1"]] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert [p[1] for p in before["h1:c1"]] == [11.0, 12.0, 13.0, 14.0, 15.0]
    if storage.dialect == "sqlite":
        assert (count(storage, t.samples_recent), count(storage, t.samples)) == (15, 0)
        assert storage.samples.settle() == 15
    else:
        assert (count(storage, t.samples_recent), count(storage, t.samples)) == (0, 15)
        assert storage.samples.settle() == 0
    assert (count(storage, t.samples_recent), count(storage, t.samples)) == (0, 15)
    assert {key: cpu_points(storage, key) for key in before} == before


def test_a_replay_of_moved_rows_stores_nothing(storage: Storage) -> None:
    """Seconds 0-2 moved, 3-4 recent: replaying all five stores 0 and counts 15
    duplicates, one call or batch by batch; a call mixing moved, recent and new rows
    stores exactly the new ones; no row is ever in both tables."""
    for i in range(5):
        storage.samples.ingest(batch(T0 + seconds(i)), T0)
        if i == 2:
            storage.samples.settle()
    replays = [batch(T0 + seconds(i)) for i in range(5)]
    results = storage.samples.ingest_many(replays, T0)
    assert [(r.stored, r.duplicates) for r in results] == [(0, 3)] * 5
    assert [storage.samples.ingest(b, T0).stored for b in replays] == [0] * 5
    mixed = [batch(T0 + seconds(1), containers=3), batch(T0 + seconds(4), containers=3)]
    mixed.append(batch(T0 + seconds(5), containers=3))
    results = storage.samples.ingest_many(mixed, T0)
    assert [(r.stored, r.duplicates) for r in results] == [(1, 3), (1, 3), (4, 0)]
    assert in_both(storage) == 0
    storage.samples.settle()
    assert count(storage, t.samples) == 5 * 3 + 1 + 1 + 4
    assert count(storage, t.samples_recent) == 0


def test_a_step_moves_whole_machines_up_to_about_its_rows(storage: Storage) -> None:
    """Ten machines of 3 rows, steps of about 7 rows: each step moves the machines below
    the 8th row's machine (2 machines, 6 rows); a machine with more rows than a step
    moves whole in a step of its own. Rows of a machine already passed wait for the
    next pass. (SQLite: MariaDB has no recent rows.) Ids follow the batch order: the
    host's is the lowest, then c0's."""
    for i in range(3):
        storage.samples.ingest(batch(T0 + seconds(i), containers=9), T0)
    if storage.dialect != "sqlite":
        assert count(storage, t.samples_recent) == 0
        return
    with storage.engine.begin() as conn:
        ids = sorted(int(i) for i in conn.execute(sa.select(t.machines.c.id)).scalars())
    assert len(ids) == 10
    moved: list[int] = []
    start = ids[0]
    while True:
        with storage.engine.begin() as conn:
            step = settle_step(conn, start, rows=7)
        moved.append(step.moved)
        if step.next_machine_id is None:
            break
        assert step.next_machine_id == ids[ids.index(start) + 2]
        start = step.next_machine_id
        if len(moved) == 1:  # h1 and h1:c0 passed: their new rows wait
            storage.samples.ingest(batch(T0 + seconds(3), containers=1), T0)
    assert moved == [6] * 5
    assert count(storage, t.samples) == 30
    assert count(storage, t.samples_recent) == 2  # the passed machines' second-3 rows
    assert in_both(storage) == 0
    for i in range(4, 14):  # the host alone: 11 rows against steps of 7
        storage.samples.ingest(batch(T0 + seconds(i), containers=0), T0)
    with storage.engine.begin() as conn:
        step = settle_step(conn, ids[0], rows=7)
    assert (step.moved, step.next_machine_id) == (1 + 10, ids[0] + 1)
    assert count(storage, t.samples_recent) == 1  # h1:c0's, in the next step


def test_roll_ups_aggregate_the_rows_of_both_tables(storage: Storage) -> None:
    """Minute 0 split: its first half moved into ``samples``, the rest recent. Every
    bucket of the roll-up is the aggregate of all its raw rows."""
    for i in range(6):
        at = T0 + seconds(i * 10)
        storage.samples.ingest(batch(at, cpu=10.0 + i), at)
        if i == 2:
            storage.samples.settle()
    storage.samples.roll_up(T0 + seconds(400))
    expected = expected_from_raw(storage, 60_000)
    assert len(expected) == 3
    n_cpu = 4 * t.METRIC_NAMES.index("cpu_percent")
    assert [figures[n_cpu] for figures in expected.values()] == [6, 6, 6]
    assert every_bucket(storage, t.rollup_1m) == expected
