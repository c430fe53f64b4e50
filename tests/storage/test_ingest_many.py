"""ingest_many: one transaction for many batches, exact per-batch counts, idempotent, on
both backends."""

from __future__ import annotations

import sqlalchemy as sa

from srvmon_core.view import batch_view
from srvmon_server.storage import IngestResult, Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, batch, raw, seconds


def count(storage: Storage, table: sa.FromClause) -> int:
    with storage.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def counts(results: list[IngestResult]) -> list[tuple[int, int]]:
    return [(r.stored, r.duplicates) for r in results]


def test_many_batches_store_every_row_with_exact_counts(storage: Storage) -> None:
    """Three batches of two hosts in one call: every row stored, each batch reports its own
    count and the machines it introduced, in call order."""
    results = storage.samples.ingest_many(
        [
            batch(T0, containers=2),
            batch(T0, containers=1, host_id="h2"),
            batch(T0 + seconds(1), containers=3),
        ],
        T0,
    )
    assert counts(results) == [(3, 0), (2, 0), (4, 0)]
    assert [sorted(r.new_machines) for r in results] == [
        ["h1", "h1:c0", "h1:c1"],
        ["h2", "h2:c0"],
        ["h1:c2"],
    ]
    assert count(storage, raw(storage)) == 9
    assert count(storage, t.machines) == 6


def test_replaying_a_call_stores_nothing_and_counts_every_duplicate(storage: Storage) -> None:
    """The same call twice: the replay stores 0 rows and reports each batch's duplicates;
    a call mixing replayed and new batches stores exactly the new rows."""
    calls = [batch(T0 + seconds(i), containers=2) for i in range(4)]
    assert counts(storage.samples.ingest_many(calls, T0)) == [(3, 0)] * 4
    again = storage.samples.ingest_many(calls, T0 + seconds(9))
    assert counts(again) == [(0, 3)] * 4
    assert [r.new_machines for r in again] == [[]] * 4
    assert count(storage, raw(storage)) == 12
    mixed = storage.samples.ingest_many(
        [batch(T0 + seconds(3), containers=3), batch(T0 + seconds(4), containers=3)], T0
    )
    assert counts(mixed) == [(1, 3), (4, 0)]
    assert [r.new_machines for r in mixed] == [["h1:c2"], []]
    assert count(storage, raw(storage)) == 17
    assert count(storage, t.machines) == 4


def test_one_sample_twice_in_a_call_is_stored_once(storage: Storage) -> None:
    """A batch repeated inside one call (a redelivered message): the second copy counts as
    duplicates, and the machine exists once."""
    results = storage.samples.ingest_many([batch(T0, containers=1), batch(T0, containers=1)], T0)
    assert counts(results) == [(2, 0), (0, 2)]
    assert [sorted(r.new_machines) for r in results] == [["h1", "h1:c0"], []]
    assert count(storage, raw(storage)) == 2
    assert count(storage, t.machines) == 2


def test_inventory_takes_the_newest_sample_of_the_call_whatever_its_position(
    storage: Storage,
) -> None:
    """Batches out of time order in one call: the inventory holds the newest sample, first
    seen is the oldest timestamp, and an older later call does not roll it back."""
    storage.samples.ingest_many(
        [
            batch(T0 + seconds(5), cpu=50.0, containers=1),
            batch(T0 + seconds(9), cpu=90.0, containers=1),
            batch(T0 + seconds(7), cpu=70.0, containers=1),
        ],
        T0 + seconds(10),
    )
    storage.samples.ingest_many([batch(T0, cpu=1.0, containers=1)], T0 + seconds(11))
    host = storage.samples.machine("h1")
    assert host is not None
    assert host.metrics["cpu_percent"] == 90.0
    assert (host.first_seen, host.last_seen) == (T0 + seconds(5), T0 + seconds(9))
    sample = storage.samples.latest_sample("h1:c0")
    assert sample is not None
    assert (sample["timestamp"], sample["cpu_percent"]) == ("2024-05-01T12:00:09Z", 90.0)
    assert count(storage, raw(storage)) == 8


def test_many_and_single_ingest_agree_on_replays(storage: Storage) -> None:
    """Rows stored by ingest_many are seen as duplicates by ingest and vice versa."""
    storage.samples.ingest(batch(T0, containers=1), T0)
    assert counts(storage.samples.ingest_many([batch(T0, containers=1)], T0)) == [(0, 2)]
    storage.samples.ingest_many([batch(T0 + seconds(1), containers=1)], T0)
    again = storage.samples.ingest(batch(T0 + seconds(1), containers=1), T0)
    assert (again.stored, again.duplicates) == (0, 2)
    assert storage.samples.ingest_many([], T0) == []
    assert count(storage, raw(storage)) == 4


def test_hosts_and_containers_are_inserted_naming_only_their_own_metrics(
    storage: Storage,
) -> None:
    """A container row binds no NULL for each host figure: the raw rows go in inserts of
    one kind of machine each (hosts first; on SQLite 5 containers take a statement of 4
    rows and one of 1), each naming exactly the metric columns that kind carries, and
    every stored row reads back as its machine's flat metrics."""
    inserts: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        unquoted = statement.replace('"', "").replace("`", "")
        if "INTO samples" in unquoted:
            inserts.append(unquoted)

    calls = [batch(T0, containers=3), batch(T0, containers=2, host_id="h2")]
    sa.event.listen(storage.engine, "before_cursor_execute", note)
    try:
        storage.samples.ingest_many(calls, T0)
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", note)

    views = [view for call in calls for view in batch_view(call).machines]
    host_metrics = set(views[0].metrics)
    container_metrics = set(views[1].metrics)
    assert container_metrics - host_metrics, "the factory's kinds must carry different metrics"
    named = [set(_named_metrics(statement)) for statement in inserts]
    per_kind = 2 if storage.engine.dialect.name == "sqlite" else 1
    assert named == [host_metrics] + [container_metrics] * per_kind

    metrics = sorted(host_metrics | container_metrics)
    columns = [t.raw_column(m) for m in metrics]
    with storage.engine.connect() as conn:
        keys = dict(conn.execute(sa.select(t.machines.c.key, t.machines.c.id)).all())
        for view in views:
            row = conn.execute(
                sa.select(*(raw(storage).c[c] for c in columns)).where(
                    raw(storage).c.machine_id == keys[view.key]
                )
            ).one()
            stored = {
                metric: value
                for metric, value in zip(metrics, row, strict=True)
                if value is not None
            }
            assert stored == view.metrics, view.key


def _named_metrics(statement: str) -> list[str]:
    """The metric columns an ``INSERT INTO samples (machine_id, ts_ms, ...)`` names."""
    inside = statement[statement.index("(") + 1 : statement.index(")")]
    columns = [c.strip() for c in inside.split(",")][2:]
    by_column = {t.raw_column(m): m for m in t.METRIC_NAMES}
    return [by_column[c] for c in columns]
