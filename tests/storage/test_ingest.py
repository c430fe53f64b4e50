"""Ingest: idempotency, exact row counts, inventory and the latest sample, on both backends."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from srvmon_core.metrics import container_metrics, host_metrics
from srvmon_core.schema import Batch
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, batch, container, host_sample, raw, seconds


def count(storage: Storage, table: sa.FromClause) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_replaying_a_batch_stores_nothing_and_reports_duplicates(storage: Storage) -> None:
    """The same batch twice: first stores 1 host + 3 containers, the replay stores 0 rows
    (and a roll-up afterwards yields one 1 m bucket per machine)."""
    first = storage.samples.ingest(batch(T0, containers=3), T0)
    assert (first.stored, first.duplicates) == (4, 0)
    assert sorted(first.new_machines) == ["h1", "h1:c0", "h1:c1", "h1:c2"]
    again = storage.samples.ingest(batch(T0, containers=3), T0 + seconds(5))
    assert (again.stored, again.duplicates, again.new_machines) == (0, 4, [])
    assert count(storage, raw(storage)) == 4
    assert count(storage, t.machines) == 4
    storage.samples.roll_up()
    assert count(storage, t.rollup_1m) == 4


def test_replay_after_reopen_is_still_idempotent(db_url: str) -> None:
    """Idempotency holds across a restart (no reliance on in-memory caches)."""
    store = Storage.open(db_url)
    for i in range(5):
        store.samples.ingest(batch(T0 + seconds(i)), T0)
    store.close()
    store = Storage.open(db_url)
    try:
        result = store.samples.ingest(batch(T0 + seconds(2)), T0)
        assert (result.stored, result.duplicates) == (0, 3)
        result = store.samples.ingest(batch(T0 + seconds(5)), T0)
        assert (result.stored, result.duplicates) == (3, 0)
        assert count(store, raw(store)) == 18
    finally:
        store.close()


def test_a_batch_mixing_new_and_known_samples_stores_only_the_new(storage: Storage) -> None:
    """A container appearing in a replayed batch is stored; the known ones are duplicates."""
    storage.samples.ingest(batch(T0, containers=2), T0)
    result = storage.samples.ingest(batch(T0, containers=3), T0)
    assert (result.stored, result.duplicates, result.new_machines) == (1, 3, ["h1:c2"])
    assert count(storage, raw(storage)) == 4


def test_raw_rows_hold_the_flat_metrics_of_each_sample(storage: Storage) -> None:
    """Every flat metric lands in its column; absent figures stay NULL, not 0."""
    b = batch(T0, cpu=33.5, containers=1)
    storage.samples.ingest(b, T0)
    with storage.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.machines.c.key, raw(storage)).join(
                t.machines, t.machines.c.id == raw(storage).c.machine_id
            )
        ).all()
    by_key = {row.key: row._mapping for row in rows}
    assert b.host is not None
    expected = {"h1": host_metrics(b.host), "h1:c0": container_metrics(b.containers[0])}
    for key, metrics in expected.items():
        stored = {
            m: by_key[key][t.raw_column(m)]
            for m in t.METRIC_NAMES
            if by_key[key][t.raw_column(m)] is not None
        }
        assert stored == metrics


def test_inventory_tracks_first_and_last_seen_and_container_state(storage: Storage) -> None:
    """first_seen stays, last_seen/state/health/restarts follow the newest sample only."""
    storage.samples.ingest(batch(T0, containers=1), T0 + seconds(0.5))
    later = Batch(
        host_id="h1",
        hostname="h1.room",
        timestamp=T0 + seconds(10),
        host=host_sample(55.0),
        containers=(container("c0", None, state="exited", health="unhealthy", restart_count=3),),
    )
    storage.samples.ingest(later, T0 + seconds(10.25))
    # an older, late-arriving batch must not roll the inventory back
    storage.samples.ingest(batch(T0 + seconds(5), containers=1), T0 + seconds(11))
    record = storage.samples.machine("h1:c0")
    assert record is not None
    assert record.kind == "container"
    assert record.host_id == "h1"
    assert record.first_seen == T0
    assert record.last_seen == T0 + seconds(10)
    assert record.last_received == T0 + seconds(10.25)
    assert (record.state, record.health, record.restart_count) == ("exited", "unhealthy", 3)
    assert record.labels == {"com.docker.compose.project": "room"}
    assert record.metrics == {"restart_count": 3.0}
    host = storage.samples.machine("h1")
    assert host is not None
    assert host.metrics["cpu_percent"] == 55.0
    assert [m.key for m in storage.samples.machines()] == ["h1", "h1:c0"]
    assert storage.samples.machine("nope") is None


def test_latest_sample_is_the_unstructured_newest_sample(storage: Storage) -> None:
    """latest_sample returns the codec's unstructured sample plus its timestamp."""
    storage.samples.ingest(batch(T0, cpu=1.0, containers=1), T0)
    storage.samples.ingest(batch(T0 + seconds(1), cpu=2.0, containers=1), T0)
    sample = storage.samples.latest_sample("h1")
    assert sample is not None
    assert sample["timestamp"] == "2024-05-01T12:00:01Z"
    assert sample["cpu_percent"] == 2.0
    assert sample["process_count"] == 42
    c = storage.samples.latest_sample("h1:c0")
    assert c is not None
    assert (c["name"], c["cpu_percent"]) == ("c0", 2.0)
    assert storage.samples.latest_sample("h1:zz") is None


def test_a_partial_replay_creates_each_new_machine_once(storage: Storage) -> None:
    """The fast path is undone when a replayed row shows up; the machine it created is not
    kept twice, and later batches of that machine store under the one surviving id."""
    storage.samples.ingest(batch(T0, containers=1), T0)
    mixed = storage.samples.ingest(batch(T0, containers=2), T0)  # h1, h1:c0 known; h1:c1 new
    assert (mixed.stored, mixed.duplicates, mixed.new_machines) == (1, 2, ["h1:c1"])
    later = storage.samples.ingest(batch(T0 + seconds(1), containers=2), T0 + seconds(1))
    assert (later.stored, later.duplicates, later.new_machines) == (3, 0, [])
    with storage.engine.connect() as conn:
        ids = conn.execute(sa.select(t.machines.c.id).where(t.machines.c.key == "h1:c1")).all()
        assert len(ids) == 1
        rows = conn.execute(
            sa.select(sa.func.count()).where(raw(storage).c.machine_id == ids[0][0])
        ).scalar_one()
    assert rows == 2
    record = storage.samples.machine("h1:c1")
    assert record is not None
    assert (record.first_seen, record.last_seen) == (T0, T0 + seconds(1))


def test_host_and_containers_with_different_metric_sets_roll_up_separately(
    storage: Storage,
) -> None:
    """Samples carrying different metrics in one batch (host, running and stopped
    containers) each fill exactly their own raw and rollup columns."""
    b = Batch(
        host_id="h1",
        hostname="h1.room",
        timestamp=T0,
        host=host_sample(20.0),
        containers=(container("up", 5.0), container("down", None, state="exited")),
    )
    assert storage.samples.ingest(b, T0).stored == 3
    storage.samples.ingest(batch(T0 + seconds(1), cpu=40.0, containers=0), T0)
    host = storage.samples.series("h1", "cpu_percent", T0, T0 + timedelta(hours=10), max_points=100)
    bucket = T0.timestamp() - T0.timestamp() % host.bucket_seconds
    assert host.points == [(bucket, 30.0, 20.0, 40.0)]
    up = storage.samples.series(
        "h1:up", "cpu_percent", T0, T0 + timedelta(hours=10), max_points=100
    )
    assert up.points == [(bucket, 5.0, 5.0, 5.0)]
    down = storage.samples.series(
        "h1:down", "cpu_percent", T0, T0 + timedelta(hours=10), max_points=100
    )
    assert down.points == []
    load = storage.samples.series("h1", "load_1", T0, T0 + timedelta(hours=10), max_points=100)
    assert load.points == [(bucket, 1.0, 1.0, 1.0)]
