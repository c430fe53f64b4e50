"""roll_up_beside: the recompute on a thread of its own while the DB thread goes on ingesting
(what the server does on MySQL/MariaDB), late samples of the pass included."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from srvmon_server.dbthread import DbThread
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from srvmon_server.storage.rollup import RollupResult, read_watermark_of
from tests.storage.factory import T0, batch, seconds
from tests.storage.test_rollup import assert_exact_closed, host_rollup, ingest

T = TypeVar("T")


def here(fn: Callable[[], T]) -> T:
    """``on_db`` for a test without a DB thread: the call runs on the caller's thread."""
    return fn()


def test_a_pass_beside_gives_what_one_roll_up_gives(storage: Storage) -> None:
    values: dict[float, float] = {}
    for i in range(8):
        ingest(storage, values, i * 20.0, 10.0 + i)  # 0 s .. 140 s: minutes 0 and 1 closed
    result = storage.samples.roll_up_beside(here, T0 + seconds(141), machines=1)
    assert (result.minute_buckets, result.exact_below_ms) == (2 * 2, to_ms(T0) + 120_000)
    assert_exact_closed(storage, {ts: v for ts, v in values.items() if ts < T0.timestamp() + 120})
    assert storage.samples.roll_up(T0 + seconds(141)).minute_buckets == 0  # nothing left


def test_a_pass_beside_skips_while_another_process_rolls_up(mariadb_url: str) -> None:
    first, second = Storage.open(mariadb_url), Storage.open(mariadb_url)
    try:
        for i in range(5):
            at = T0 + seconds(i * 30)
            second.samples.ingest(batch(at), at)
        with first.database.try_exclusive("srvmon.roll_up") as mine:
            assert mine
            skipped = second.samples.roll_up_beside(here, T0 + seconds(131))
        assert skipped == RollupResult(
            minute_buckets=0, start_ms=None, end_ms=None, exact_below_ms=None
        )
        assert read_watermark_of(second.engine) == (None, to_ms(T0))
        done = second.samples.roll_up_beside(here, T0 + seconds(131))
        assert done.exact_below_ms == to_ms(T0) + 60_000
    finally:
        first.close()
        second.close()


def wait_for_lock_wait(engine: sa.Engine, timeout: float = 20.0) -> None:
    """Until some transaction waits for a row lock (the pass's second slice)."""
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar():
                return
        time.sleep(0.2)  # InnoDB refreshes the table only when unread for 0.1 s
    raise AssertionError(f"no transaction waited for a lock within {timeout} s")


def test_ingest_goes_on_during_a_pass_beside_and_its_late_sample_is_rolled_up_next(
    mariadb_url: str,
) -> None:
    """The pass recomputes the host (first slice), then waits on the container's rollup
    rows, which another transaction holds. Meanwhile the DB thread stores a host sample
    for a minute the pass has already done (above the old watermark, below the pass's
    seal): it returns while the pass is still in flight. The pass then ends without that
    sample, and the next roll-up folds it in."""
    storage = Storage.open(mariadb_url)
    db = DbThread()
    values: dict[float, float] = {}
    try:
        for s in (0.0, 30.0, 60.0, 90.0, 120.0):
            ingest(storage, values, s, 20.0 + s / 10)
        assert storage.samples.roll_up(T0 + seconds(131)).exact_below_ms == to_ms(T0) + 60_000
        for s in (150.0, 170.0, 190.0):  # newest 190 s: the next pass seals minute 2
            ingest(storage, values, s, 20.0 + s / 10)
        with storage.engine.connect() as conn:
            kinds = dict(conn.execute(sa.select(t.machines.c.kind, t.machines.c.id)).all())
        host_id, container_id = kinds["host"], kinds["container"]
        assert host_id < container_id  # slices go in id order: the host first

        # the container's rollup rows after its minute 0 (the gap before them only: the
        # host's rows, before the container's minute 0 in the key, stay free)
        holder = storage.engine.connect()
        hold = holder.begin()
        holder.execute(
            sa.select(t.rollup_1m.c.bucket_ms)
            .where(t.rollup_1m.c.machine_id == container_id, t.rollup_1m.c.bucket_ms > to_ms(T0))
            .with_for_update()
        ).all()
        outcome: list[RollupResult | BaseException] = []

        def roll() -> None:
            try:
                outcome.append(storage.samples.roll_up_beside(db.call, T0 + seconds(200), 1))
            except BaseException as exc:  # shown by the assertion below
                outcome.append(exc)

        pass_thread = threading.Thread(target=roll)
        pass_thread.start()
        try:
            wait_for_lock_wait(storage.engine)
            assert host_rollup(storage, t.rollup_1m)[T0.timestamp() + 120][0] == 3  # host done
            late = T0 + seconds(165)
            stored = db.call(storage.samples.ingest, batch(late, cpu=99.0, containers=0), late)
            assert stored.stored == 1
            assert pass_thread.is_alive()  # the pass was in flight all along
            values[late.timestamp()] = 99.0
        finally:
            hold.commit()
            holder.close()
            pass_thread.join(30)
        (result,) = outcome
        assert isinstance(result, RollupResult)
        assert result.exact_below_ms == to_ms(T0) + 180_000
        assert read_watermark_of(storage.engine) == (to_ms(T0) + 180_000, to_ms(late))
        assert host_rollup(storage, t.rollup_1m)[T0.timestamp() + 120][0] == 3  # not in yet

        storage.samples.roll_up(T0 + seconds(200))
        assert host_rollup(storage, t.rollup_1m)[T0.timestamp() + 120] == (4, 203.0, 32.0, 99.0)
        assert_exact_closed(
            storage, {ts: v for ts, v in values.items() if ts < T0.timestamp() + 180}
        )
    finally:
        db.shutdown()
        storage.close()
