"""Write-behind inventory: how far the stored inventory row lags, and that no read sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from srvmon_server.storage import Storage, StorageError
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, batch, seconds


def stored_latest(storage: Storage) -> dict[str, tuple[int, float]]:
    """Straight from the table: key → (latest_ts_ms, cpu_percent of latest_metrics)."""
    with storage.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.machines.c.key, t.machines.c.latest_ts_ms, t.machines.c.latest_metrics)
        ).all()
    return {key: (int(ts), json.loads(metrics)["cpu_percent"]) for key, ts, metrics in rows}


def ms(offset: float) -> int:
    return int((T0 + seconds(offset)).timestamp() * 1000)


@pytest.fixture
def lagging(db_url: str) -> Iterator[Storage]:
    store = Storage.open(db_url, inventory_flush=timedelta(seconds=5))
    try:
        yield store
    finally:
        store.close()


def test_inventory_row_waits_until_five_seconds_of_received_time(lagging: Storage) -> None:
    """Batches one second apart: rows are created with the first sample, then refreshed
    by the batch received 5 s after the oldest waiting one, with the newest values."""
    for i in range(5):  # received at +0 … +4: created at +0, +1…+4 wait
        lagging.samples.ingest(batch(T0 + seconds(i), cpu=10.0 + i, containers=1), T0 + seconds(i))
    assert stored_latest(lagging) == {"h1": (ms(0), 10.0), "h1:c0": (ms(0), 10.0)}
    lagging.samples.ingest(batch(T0 + seconds(5), cpu=15.0, containers=1), T0 + seconds(6))
    assert stored_latest(lagging) == {"h1": (ms(5), 15.0), "h1:c0": (ms(5), 15.0)}
    lagging.samples.ingest(batch(T0 + seconds(6), cpu=16.0, containers=1), T0 + seconds(7))
    assert stored_latest(lagging) == {"h1": (ms(5), 15.0), "h1:c0": (ms(5), 15.0)}


def test_reads_flush_first_and_see_the_newest_sample(lagging: Storage) -> None:
    for i in range(3):
        lagging.samples.ingest(batch(T0 + seconds(i), cpu=20.0 + i, containers=2), T0 + seconds(i))
    assert stored_latest(lagging)["h1"] == (ms(0), 20.0)
    record = lagging.samples.machine("h1:c1")
    assert record is not None
    assert record.last_seen == T0 + seconds(2)
    assert record.metrics["cpu_percent"] == 23.0  # cpu + index 1
    # the read wrote the row it read; the others still wait (a fleet's worth, at scale)
    assert stored_latest(lagging)["h1:c1"] == (ms(2), 23.0)
    assert stored_latest(lagging)["h1"] == (ms(0), 20.0)
    lagging.samples.ingest(batch(T0 + seconds(3), cpu=30.0, containers=2), T0 + seconds(3))
    assert {r.key: r.metrics["cpu_percent"] for r in lagging.samples.machines()} == {
        "h1": 30.0,
        "h1:c0": 30.0,
        "h1:c1": 31.0,
    }
    lagging.samples.ingest(batch(T0 + seconds(4), cpu=40.0, containers=2), T0 + seconds(4))
    sample = lagging.samples.latest_sample("h1")
    assert sample is not None
    assert (sample["cpu_percent"], sample["timestamp"]) == (40.0, "2024-05-01T12:00:04Z")


def test_an_older_sample_arriving_later_does_not_replace_a_newer_one(lagging: Storage) -> None:
    lagging.samples.ingest(batch(T0, cpu=1.0, containers=0), T0)
    lagging.samples.ingest(batch(T0 + seconds(10), cpu=2.0, containers=0), T0 + seconds(1))
    lagging.samples.ingest(batch(T0 + seconds(5), cpu=3.0, containers=0), T0 + seconds(2))
    lagging.samples.flush_inventory()
    assert stored_latest(lagging) == {"h1": (ms(10), 2.0)}


def test_a_replayed_batch_keeps_what_waits(lagging: Storage) -> None:
    """A replay takes the careful path (undone, then redone): the waiting newest sample
    is neither lost nor replaced by the replay."""
    lagging.samples.ingest(batch(T0, cpu=1.0, containers=1), T0)
    lagging.samples.ingest(batch(T0 + seconds(1), cpu=2.0, containers=1), T0 + seconds(1))
    replay = lagging.samples.ingest(batch(T0, cpu=1.0, containers=1), T0 + seconds(2))
    assert (replay.stored, replay.duplicates) == (0, 2)
    mixed = lagging.samples.ingest_many(
        [batch(T0 + seconds(1), cpu=2.0, containers=1), batch(T0 + seconds(2), cpu=5.0)],
        T0 + seconds(3),
    )
    assert [(r.stored, r.duplicates) for r in mixed] == [(0, 2), (3, 0)]
    assert stored_latest(lagging) == {
        "h1": (ms(0), 1.0),
        "h1:c0": (ms(0), 1.0),
        "h1:c1": (ms(2), 6.0),  # created with its first sample
    }
    lagging.samples.flush_inventory()
    assert stored_latest(lagging) == {
        "h1": (ms(2), 5.0),
        "h1:c0": (ms(2), 5.0),
        "h1:c1": (ms(2), 6.0),
    }


def test_close_writes_what_waits(db_url: str) -> None:
    store = Storage.open(db_url, inventory_flush=timedelta(seconds=60))
    for i in range(4):
        store.samples.ingest(batch(T0 + seconds(i), cpu=float(i), containers=1), T0 + seconds(i))
    store.close()
    reopened = Storage.open(db_url, inventory_flush=timedelta(0))
    try:
        assert stored_latest(reopened) == {"h1": (ms(3), 3.0), "h1:c0": (ms(3), 3.0)}
    finally:
        reopened.close()


def test_a_roll_up_with_a_closed_minute_writes_what_waits_first(lagging: Storage) -> None:
    """The minute of T0 closes 10 s after the newest sample passes its end. That sample
    still waits for its inventory row; the roll-up counts it, writes the row, and folds
    the whole minute (the roll-up selects machines by their row's newest sample)."""
    assert T0.timestamp() % 60 == 0
    lagging.samples.ingest(batch(T0, cpu=1.0, containers=1), T0)
    for i in (30, 59, 70):
        at = T0 + seconds(i)
        lagging.samples.ingest(batch(at, cpu=float(i), containers=1), T0 + seconds(1))
    assert stored_latest(lagging) == {"h1": (ms(0), 1.0), "h1:c0": (ms(0), 1.0)}
    result = lagging.samples.roll_up_step(T0 + seconds(71))
    assert (result.minute_buckets, result.exact_below_ms) == (2, ms(60))
    assert stored_latest(lagging) == {"h1": (ms(70), 70.0), "h1:c0": (ms(70), 70.0)}
    with lagging.engine.connect() as conn:
        count = t.rollup_1m.c[t.rollup_columns("cpu_percent")[0]]
        counts = conn.execute(sa.select(count).order_by(t.rollup_1m.c.machine_id)).scalars()
    assert list(counts) == [3, 3]  # T0, +30 s and +59 s, for the host and its container


def test_a_roll_up_with_nothing_closed_leaves_what_waits(lagging: Storage) -> None:
    """Nothing to fold, nothing written: most of the server's roll-ups (every 5 s; a
    minute closes every 60) would otherwise write a fleet's inventory rows each time."""
    lagging.samples.ingest(batch(T0, cpu=1.0, containers=0), T0)
    lagging.samples.ingest(batch(T0 + seconds(1), cpu=2.0, containers=0), T0 + seconds(1))
    for roll_up in (lagging.samples.roll_up, lagging.samples.roll_up_step):
        result = roll_up(T0 + seconds(4.5))  # waiting since +0 (the row's first write)
        assert (result.minute_buckets, result.start_ms, result.more) == (0, None, False)
        assert stored_latest(lagging) == {"h1": (ms(0), 1.0)}
    assert lagging.samples.machine("h1") is not None  # a read still sees the newest
    assert stored_latest(lagging) == {"h1": (ms(1), 2.0)}


def test_a_roll_up_writes_what_waits_once_it_is_due(lagging: Storage) -> None:
    """Ingest writes the rows when due; when ingest stopped first, the roll-up job does, so
    other processes still see them at most ``inventory_flush`` late."""
    lagging.samples.ingest(batch(T0, cpu=1.0, containers=0), T0)
    lagging.samples.ingest(batch(T0 + seconds(1), cpu=2.0, containers=0), T0 + seconds(1))
    lagging.samples.roll_up_step(T0 + seconds(4.5))  # waiting since +0: due at +5
    assert stored_latest(lagging) == {"h1": (ms(0), 1.0)}
    result = lagging.samples.roll_up_step(T0 + seconds(5))
    assert (result.minute_buckets, result.start_ms) == (0, None)
    assert stored_latest(lagging) == {"h1": (ms(1), 2.0)}


def test_zero_writes_through_in_every_transaction(db_url: str) -> None:
    store = Storage.open(db_url, inventory_flush=timedelta(0))
    try:
        for i in range(3):
            store.samples.ingest(batch(T0 + seconds(i), cpu=float(i), containers=1), T0)
            assert stored_latest(store) == {"h1": (ms(i), float(i)), "h1:c0": (ms(i), float(i))}
    finally:
        store.close()


def test_a_negative_delay_is_refused(db_url: str) -> None:
    with pytest.raises(StorageError, match="inventory_flush must be >= 0"):
        Storage.open(db_url, inventory_flush=timedelta(seconds=-1))
