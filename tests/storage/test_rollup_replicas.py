"""Two processes on one MariaDB database (server replicas): one ingests, the other rolls up.
A late sample the first stores is rolled up whatever the second did meanwhile: the mark
reads the watermark as committed, never a copy the ingesting process kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import sqlalchemy as sa

from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.rollup import ROLL_UP_LOCK, read_watermark_of
from tests.storage.factory import T0, seconds
from tests.storage.test_rollup import assert_exact, host_rollup, ingest

T = TypeVar("T")


@pytest.fixture
def replicas(mariadb_url: str) -> Iterator[tuple[Storage, Storage]]:
    """(the replica that ingests, the replica that rolls up)."""
    ingesting, rolling = Storage.open(mariadb_url), Storage.open(mariadb_url)
    try:
        yield ingesting, rolling
    finally:
        ingesting.close()
        rolling.close()


def lock_holder(storage: Storage) -> int | None:
    with storage.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": ROLL_UP_LOCK})
        holder = found.scalar()
    return None if holder is None else int(holder)


def test_a_late_sample_below_a_watermark_another_replica_moved_is_rolled_up(
    replicas: tuple[Storage, Storage],
) -> None:
    """The ingesting replica last saw no watermark at all; the other then rolls minutes 0
    and 1 up. A sample for minute 0 stored after that is marked and folded in next."""
    ingesting, rolling = replicas
    values: dict[float, float] = {}
    for s in (0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0):
        ingest(ingesting, values, s, 10.0 + s / 10)
    assert rolling.samples.roll_up(T0 + seconds(191)).exact_below_ms == to_ms(T0) + 120_000
    ingest(ingesting, values, 45.0, 95.0)  # late: below the watermark the other replica set
    assert read_watermark_of(ingesting.engine) == (to_ms(T0) + 120_000, to_ms(T0) + 45_000)
    rolling.samples.roll_up(T0 + seconds(191))
    assert host_rollup(rolling, t.rollup_1m)[T0.timestamp()] == (3, 118.0, 10.0, 95.0)
    assert_exact(rolling, {ts: v for ts, v in values.items() if ts < T0.timestamp() + 120})


def test_a_late_sample_stored_while_another_replica_passes_is_rolled_up_next(
    replicas: tuple[Storage, Storage],
) -> None:
    """The other replica's pass over minutes 1 and 2 has recomputed every machine (its
    watermark not moved yet) when the first stores a sample for minute 1, already done:
    the pass ends without it, and the next roll-up folds it in."""
    ingesting, rolling = replicas
    values: dict[float, float] = {}
    for s in (0.0, 30.0, 60.0, 90.0, 120.0):
        ingest(ingesting, values, s, 20.0)
    assert rolling.samples.roll_up(T0 + seconds(131)).exact_below_ms == to_ms(T0) + 60_000
    for s in (150.0, 170.0, 190.0):  # newest 190 s: the next pass seals minute 2
        ingest(ingesting, values, s, 20.0)
    seen: list[tuple[int | None, tuple[int, float, float, float]]] = []
    calls = 0

    def on_db(fn: Callable[[], T]) -> T:
        nonlocal calls
        calls += 1
        if calls == 3:  # 1: a minute closed? 2: the pass begins; 3: its end, not moved yet
            seen.append(
                (lock_holder(ingesting), host_rollup(rolling, t.rollup_1m)[T0.timestamp() + 60])
            )
            ingest(ingesting, values, 100.0, 80.0)
        return fn()

    result = rolling.samples.roll_up_beside(on_db, T0 + seconds(200), machines=1)
    assert result.exact_below_ms == to_ms(T0) + 180_000
    ((holder, minute_1),) = seen
    assert holder is not None, "the pass held the roll-up lock when the sample came"
    assert minute_1 == (2, 40.0, 20.0, 20.0), "minute 1 was recomputed before the sample"
    assert host_rollup(rolling, t.rollup_1m)[T0.timestamp() + 60] == (2, 40.0, 20.0, 20.0)
    assert read_watermark_of(ingesting.engine) == (to_ms(T0) + 180_000, to_ms(T0) + 100_000)

    rolling.samples.roll_up(T0 + seconds(200))
    assert host_rollup(rolling, t.rollup_1m)[T0.timestamp() + 60] == (3, 120.0, 20.0, 80.0)
    assert_exact(rolling, {ts: v for ts, v in values.items() if ts < T0.timestamp() + 180})


def test_a_roll_up_cut_short_leaves_a_true_watermark(replicas: tuple[Storage, Storage]) -> None:
    """A pass takes the marks and is cut short after its first slice (its process dies):
    the watermark it left is where the late minute starts, and the next roll-up, by the
    other replica, makes every closed minute exact."""
    ingesting, rolling = replicas
    values: dict[float, float] = {}
    for s in (0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0):
        ingest(ingesting, values, s, 30.0 + s / 30)
    assert rolling.samples.roll_up(T0 + seconds(191)).exact_below_ms == to_ms(T0) + 120_000
    ingest(ingesting, values, 20.0, 66.0)  # late, minute 0
    calls = 0

    class Died(Exception):
        pass

    def on_db(fn: Callable[[], T]) -> T:
        nonlocal calls
        calls += 1
        if calls == 3:  # 1: a minute closed? 2: the pass begins; 3: its end never comes
            raise Died
        return fn()

    with pytest.raises(Died):
        rolling.samples.roll_up_beside(on_db, T0 + seconds(191), machines=1)
    assert read_watermark_of(rolling.engine) == (to_ms(T0), None)  # taken, still true
    ingesting.samples.roll_up(T0 + seconds(191))
    assert_exact(ingesting, {ts: v for ts, v in values.items() if ts < T0.timestamp() + 120})
