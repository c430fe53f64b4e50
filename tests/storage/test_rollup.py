"""roll_up: rollups recomputed from raw rows off the ingest path, late samples included."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.rollup import RollupResult
from tests.storage.factory import T0, batch, raw, seconds

Bucket = tuple[int, float, float, float]


def host_rollup(storage: Storage, table: sa.Table) -> dict[float, Bucket]:
    """{bucket start s: (n, sum, min, max)} of the host's cpu_percent in ``table``."""
    n, total, low, high = t.rollup_columns("cpu_percent")
    with storage.engine.connect() as conn:
        host = conn.execute(sa.select(t.machines.c.id).where(t.machines.c.key == "h1")).scalar()
        rows = conn.execute(
            sa.select(table.c.bucket_ms, table.c[n], table.c[total], table.c[low], table.c[high])
            .where(table.c.machine_id == host)
            .order_by(table.c.bucket_ms)
        ).all()
    return {b / 1000: (int(c), float(s), float(lo), float(hi)) for b, c, s, lo, hi in rows}


def expected(values: dict[float, float], width_s: int) -> dict[float, Bucket]:
    groups: dict[float, list[float]] = defaultdict(list)
    for ts, v in values.items():
        groups[ts - ts % width_s].append(v)
    return {b: (len(vs), sum(vs), min(vs), max(vs)) for b, vs in groups.items()}


def ingest(storage: Storage, values: dict[float, float], offset_s: float, cpu: float) -> None:
    at = T0 + seconds(offset_s)
    storage.samples.ingest(batch(at, cpu=cpu, containers=1), at)
    values[at.timestamp()] = cpu


def assert_exact(storage: Storage, values: dict[float, float]) -> None:
    assert host_rollup(storage, t.rollup_1m) == expected(values, 60)
    assert host_rollup(storage, t.rollup_1h) == expected(values, 3600)


def test_ingest_leaves_rollups_to_roll_up(storage: Storage) -> None:
    """Ingest writes no rollup row; roll_up then writes one 1 m bucket per machine and minute."""
    values: dict[float, float] = {}
    for i in range(5):
        ingest(storage, values, i * 30.0, 10.0 + i)
    assert host_rollup(storage, t.rollup_1m) == {}
    result = storage.samples.roll_up()
    assert result.minute_buckets == 3 * 2  # minutes 0, 1, 2 for the host and its container
    assert_exact(storage, values)


def test_only_closed_minutes_are_rolled_up(storage: Storage) -> None:
    """A minute closes once the newest stored sample is 10 s past its end; the open one
    waits, whatever the clock says."""
    values: dict[float, float] = {}
    ingest(storage, values, 0, 10.0)
    ingest(storage, values, 20, 30.0)
    ingest(storage, values, 65, 50.0)
    assert storage.samples.roll_up(T0 + seconds(80)).minute_buckets == 0  # newest: 1:05
    ingest(storage, values, 75, 60.0)
    result = storage.samples.roll_up(T0 + seconds(80))
    assert result.exact_below_ms == round((T0 + seconds(60)).timestamp() * 1000)
    assert host_rollup(storage, t.rollup_1m) == {T0.timestamp(): (2, 40.0, 10.0, 30.0)}
    ingest(storage, values, 125, 70.0)
    assert storage.samples.roll_up(T0 + seconds(130)).minute_buckets == 0  # 1:00-2:00 open
    ingest(storage, values, 130, 80.0)
    storage.samples.roll_up(T0 + seconds(131))
    del values[(T0 + seconds(125)).timestamp()]
    del values[(T0 + seconds(130)).timestamp()]  # minute 2:00-3:00 is still open
    assert_exact(storage, values)


def test_a_quiet_fleets_minutes_close_by_the_clock(storage: Storage) -> None:
    """With no newer sample, a minute closes IDLE_MS (5 min) after its end by the clock."""
    values: dict[float, float] = {}
    ingest(storage, values, 0, 10.0)
    assert storage.samples.roll_up(T0 + seconds(60 + 10 + 299)).minute_buckets == 0
    assert storage.samples.roll_up(T0 + seconds(60 + 10 + 300)).minute_buckets == 2
    assert_exact(storage, values)


def test_a_backlog_is_not_late_for_minutes_only_the_clock_passed(storage: Storage) -> None:
    """Ingest 100 s behind the clock (a backlog, a replica catching up): roll-ups close the
    minutes the data passed, so the batches still to come are not late (no recompute of
    the same minutes at every roll-up)."""
    values: dict[float, float] = {}
    for offset in range(0, 101, 10):
        ingest(storage, values, offset, float(offset))
    result = storage.samples.roll_up(T0 + seconds(200))
    assert result.exact_below_ms == round((T0 + seconds(60)).timestamp() * 1000)
    for offset in range(110, 181, 10):
        ingest(storage, values, offset, float(offset))
    with storage.engine.connect() as conn:
        dirty = conn.execute(sa.select(t.rollup_progress.c.dirty_from_ms)).scalar()
    assert dirty is None
    storage.samples.roll_up(T0 + seconds(280))
    for key in [k for k in values if k >= (T0 + seconds(120)).timestamp()]:
        del values[key]  # newest 3:00: minute 2:00-3:00 is open
    assert_exact(storage, values)


def test_samples_for_a_rolled_up_minute_are_folded_in_later(storage: Storage) -> None:
    """A sample arriving after its minute was rolled up is added by the next roll_up."""
    values: dict[float, float] = {}
    ingest(storage, values, 0, 10.0)
    ingest(storage, values, 20, 30.0)
    storage.samples.roll_up()
    ingest(storage, values, 40, 50.0)
    storage.samples.roll_up()
    assert host_rollup(storage, t.rollup_1m) == {T0.timestamp(): (3, 90.0, 10.0, 50.0)}
    assert_exact(storage, values)


def test_roll_up_is_idempotent(storage: Storage) -> None:
    """Calling roll_up again with nothing new changes no rollup value."""
    values: dict[float, float] = {}
    for i in range(30):
        ingest(storage, values, i * 13.0, float(i))
    storage.samples.roll_up()
    first = (host_rollup(storage, t.rollup_1m), host_rollup(storage, t.rollup_1h))
    storage.samples.roll_up()
    storage.samples.roll_up()
    assert (host_rollup(storage, t.rollup_1m), host_rollup(storage, t.rollup_1h)) == first
    assert_exact(storage, values)


def test_late_samples_far_below_the_watermark_are_rolled_up(storage: Storage) -> None:
    """A batch 3 h older than everything rolled up still lands in its 1 m and 1 h buckets."""
    values: dict[float, float] = {}
    for i in range(10):
        ingest(storage, values, 4 * 3600 + i * 60.0, 20.0 + i)
    storage.samples.roll_up()
    ingest(storage, values, 3600 + 5, 77.0)  # hour 1: 3 hours late
    ingest(storage, values, 4 * 3600 + 65, 1.0)  # into an already rolled-up minute
    storage.samples.roll_up()
    assert_exact(storage, values)
    assert host_rollup(storage, t.rollup_1h)[T0.timestamp() + 3600] == (1, 77.0, 77.0, 77.0)


def test_late_sample_survives_a_restart_before_the_roll_up(db_url: str) -> None:
    """The late mark is stored with the sample: a new process's roll_up still folds it in."""
    values: dict[float, float] = {}
    store = Storage.open(db_url)
    try:
        for i in range(5):
            ingest(store, values, 7200 + i * 60.0, 40.0)
        store.samples.roll_up()
        ingest(store, values, 30, 99.0)
    finally:
        store.close()
    store = Storage.open(db_url)
    try:
        store.samples.roll_up()
        assert_exact(store, values)
    finally:
        store.close()


def test_series_merges_rollups_with_the_raw_tail(storage: Storage) -> None:
    """A long-range series is exact although its newest minute is not rolled up: the bucket
    holding the watermark combines the 1 m rollup row and the raw rows after it."""
    values: dict[float, float] = {}
    ingest(storage, values, 0, 10.0)
    ingest(storage, values, 70, 20.0)
    storage.samples.roll_up(T0 + seconds(75))  # minute 0 closed, minute 1 open
    ingest(storage, values, 90, 60.0)
    series = storage.samples.series("h1", "cpu_percent", T0, T0 + timedelta(days=1), max_points=100)
    assert series.resolution == "1m"
    assert series.bucket_seconds == 900
    assert series.points == [(T0.timestamp(), 30.0, 10.0, 60.0)]
    unmerged = storage.samples.series(
        "h1", "cpu_percent", T0, T0 + timedelta(hours=2), max_points=100
    )
    assert unmerged.bucket_seconds == 120
    assert unmerged.points == [(T0.timestamp(), 30.0, 10.0, 60.0)]


def test_series_before_any_roll_up_reads_raw_rows(storage: Storage) -> None:
    """Before the first roll_up the 1 h tier answers from raw rows, exactly."""
    values: dict[float, float] = {}
    for i in range(4):
        ingest(storage, values, i * 1800.0, 10.0 * (i + 1))
    series = storage.samples.series(
        "h1", "cpu_percent", T0, T0 + timedelta(days=30), max_points=100
    )
    assert series.resolution == "1h"
    width = series.bucket_seconds
    want = expected(values, int(width))
    assert series.points == [(b, s / n, lo, hi) for b, (n, s, lo, hi) in sorted(want.items())]


def test_prune_rolls_up_before_deleting_raw_rows(storage: Storage) -> None:
    """prune(now) rolls up first, then deletes only raw rows below the watermark: the open
    minutes stay although retention has passed, and every rollup is exact."""
    values: dict[float, float] = {}
    for i in range(20):
        ingest(storage, values, i * 60.0, float(i))
    now = T0 + timedelta(minutes=19, seconds=20)
    deleted = storage.retention.prune(now, raw_retention=timedelta(0))
    assert deleted == 18 * 2  # the newest sample (19:00) closed minutes up to 18:00
    with storage.engine.connect() as conn:
        kept = conn.execute(sa.select(raw(storage).c.ts_ms).distinct().order_by("ts_ms")).scalars()
        assert [ms / 1000 for ms in kept] == [T0.timestamp() + m * 60 for m in (18, 19)]
    del values[T0.timestamp() + 18 * 60]  # the open minutes are not rolled up yet
    del values[T0.timestamp() + 19 * 60]
    assert_exact(storage, values)


def test_a_database_from_before_roll_up_keeps_its_rollups(db_url: str) -> None:
    """Without a progress row (rollups maintained at ingest), the watermark starts after the
    newest sample: the next roll_up recomputes nothing older."""
    store = Storage.open(db_url)
    try:
        for i in range(3):
            store.samples.ingest(batch(T0 + seconds(i * 60)), T0)
        store.samples.roll_up()
        with store.engine.begin() as conn:
            conn.execute(sa.delete(t.rollup_progress))
    finally:
        store.close()
    store = Storage.open(db_url)
    try:
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(t.rollup_progress)).one()
        newest_ms = round((T0 + seconds(120)).timestamp() * 1000)
        assert (row.exact_below_ms, row.dirty_from_ms) == (newest_ms + 1, None)
        assert store.samples.roll_up().start_ms == newest_ms + 1 - (newest_ms + 1) % 60_000
    finally:
        store.close()


def roll_up_in_steps(storage: Storage, now_s: float, machines: int = 1) -> list[RollupResult]:
    results = [storage.samples.roll_up_step(T0 + seconds(now_s), machines)]
    while results[-1].more:
        results.append(storage.samples.roll_up_step(T0 + seconds(now_s), machines))
    return results


def test_a_stepped_roll_up_gives_what_one_roll_up_gives(storage: Storage) -> None:
    """Rolled up a machine per step (SQLite), the minutes closed are exact, and the server's
    steps end where one roll_up ends (on MariaDB each step is a whole roll_up)."""
    values: dict[float, float] = {}
    for i in range(8):
        ingest(storage, values, i * 20.0, 10.0 + i)  # 0 s .. 140 s: minutes 0 and 1 closed
    results = roll_up_in_steps(storage, 141.0)
    stepped = storage.dialect == "sqlite"
    assert len(results) == (3 if stepped else 1)  # host, container, then the empty last slice
    assert results[-1].minute_buckets == 2 * 2 and results[-1].exact_below_ms == to_ms(T0) + 120_000
    closed = {ts: v for ts, v in values.items() if ts < T0.timestamp() + 120}
    assert_exact_closed(storage, closed)


def assert_exact_closed(storage: Storage, values: dict[float, float]) -> None:
    assert host_rollup(storage, t.rollup_1m) == expected(values, 60)
    assert host_rollup(storage, t.rollup_1h) == expected(values, 3600)


def test_a_sample_landing_in_a_machine_a_stepped_pass_has_done_is_rolled_up_next(
    sqlite_storage: Storage,
) -> None:
    """The host's minute 0 is recomputed in the first step; then a late host sample for
    minute 0 is stored while the pass goes on (the watermark has not moved yet). The pass
    ends without it, and the next roll-up folds it in: never lost."""
    storage = sqlite_storage
    values: dict[float, float] = {}
    for i in range(5):
        ingest(storage, values, i * 30.0, 20.0)  # 0 .. 120 s: minute 0 closed (newest - 10 s)
    first = storage.samples.roll_up_step(T0 + seconds(131), 1)
    assert first.more
    assert host_rollup(storage, t.rollup_1m)[T0.timestamp()][0] == 2  # the host is done
    ingest(storage, values, 45.0, 90.0)  # late, into the done machine's minute 0
    rest = roll_up_in_steps(storage, 131.0)
    assert rest[-1].exact_below_ms == to_ms(T0) + 60_000
    roll_up_in_steps(storage, 131.0)  # the next pass, as the periodic job runs it
    closed = {ts: v for ts, v in values.items() if ts < T0.timestamp() + 60}
    assert host_rollup(storage, t.rollup_1m)[T0.timestamp()] == (3, 130.0, 20.0, 90.0)
    assert_exact_closed(storage, closed)


def test_a_stepped_pass_cut_short_by_a_restart_loses_nothing(tmp_path: Path) -> None:
    """A process stops after one step and a late sample: a new process's roll-up starts
    from the stored watermark and marks, and every closed minute is exact."""
    url = f"sqlite:///{tmp_path / 'srvmon.db'}"
    values: dict[float, float] = {}
    store = Storage.open(url)
    try:
        for i in range(5):
            ingest(store, values, i * 30.0, 30.0 + i)
        assert store.samples.roll_up_step(T0 + seconds(131), 1).more
        ingest(store, values, 50.0, 77.0)
    finally:
        store.close()
    store = Storage.open(url)
    try:
        roll_up_in_steps(store, 131.0)
        closed = {ts: v for ts, v in values.items() if ts < T0.timestamp() + 60}
        assert_exact_closed(store, closed)
    finally:
        store.close()


def every_bucket(storage: Storage, table: sa.Table) -> dict[tuple[int, int], tuple[Any, ...]]:
    """{(machine id, bucket ms): every metric's (n, sum, min, max)} of a rollup table."""
    columns = [c for m in t.METRIC_NAMES for c in t.rollup_columns(m)]
    with storage.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.machine_id, table.c.bucket_ms, *(table.c[c] for c in columns))
        ).all()
    return {(int(r[0]), int(r[1])): tuple(r[2:]) for r in rows}


def expected_from_raw(storage: Storage, width_ms: int) -> dict[tuple[int, int], tuple[Any, ...]]:
    """The same, computed here from the raw rows (NULL figures not counted)."""
    columns = [t.raw_column(m) for m in t.METRIC_NAMES]
    stored = raw(storage).c
    with storage.engine.connect() as conn:
        rows = conn.execute(
            sa.select(stored.machine_id, stored.ts_ms, *(stored[c] for c in columns))
        ).all()
    groups: dict[tuple[int, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        groups[(int(row[0]), int(row[1]) - int(row[1]) % width_ms)].append(tuple(row[2:]))
    out: dict[tuple[int, int], tuple[Any, ...]] = {}
    for key, samples in groups.items():
        figures: list[Any] = []
        for index in range(len(columns)):
            values = [s[index] for s in samples if s[index] is not None]
            if values:
                figures += [len(values), sum(values), min(values), max(values)]
            else:
                figures += [0, 0.0, None, None]
        out[key] = tuple(figures)
    return out


def test_every_rollup_column_of_every_machine_is_its_raw_rows_aggregate(storage: Storage) -> None:
    """Hosts and containers (a stopped one carries no figures): each bucket's n, sum, min
    and max of all 28 metrics equal the raw rows' aggregates, those a machine's kind never
    carries included (n 0, sum 0, min and max NULL)."""
    for i in range(6):  # 0 .. 100 s: minute 0 closed at 131 s
        at = T0 + seconds(i * 20)
        running = batch(at, cpu=10.0 + i, containers=2, host_id="h1")
        stopped = batch(at, cpu=30.0 - i, containers=1, stopped=True, host_id="h2")
        storage.samples.ingest(running, at)
        storage.samples.ingest(stopped, at)
    storage.samples.roll_up(T0 + seconds(131))
    minute_zero = to_ms(T0)
    closed = {k: v for k, v in expected_from_raw(storage, 60_000).items() if k[1] == minute_zero}
    assert len(closed) == 2 + 3  # two hosts, three containers
    assert every_bucket(storage, t.rollup_1m) == closed
    assert every_bucket(storage, t.rollup_1h) == closed  # hour 0 holds minute 0 so far
