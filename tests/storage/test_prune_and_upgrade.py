"""Retention deletes only old rows, in bounded batches; older schemas upgrade without loss."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from srvmon_core.rules import Rule
from srvmon_server.storage import SCHEMA_VERSION, Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, alert_event, batch, raw, seconds
from tests.storage.test_rollup import every_bucket, expected_from_raw

RULE = Rule(id="r1", name="r1", metric="cpu_percent", warn=80.0)


def count(
    storage: Storage, table: sa.FromClause, where: sa.ColumnElement[bool] | None = None
) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if where is not None:
        query = query.where(where)
    with storage.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_prune_deletes_only_rows_older_than_retention_in_batches(storage: Storage) -> None:
    """Raw rows older than the cutoff go, in batches of at most batch_rows; newer rows stay,
    whether moved into ``samples`` already or (SQLite) still in ``samples_recent``."""
    for i in range(40):  # 40 batches x 3 machines, one per minute
        storage.samples.ingest(batch(T0 + timedelta(minutes=i)), T0)
        if i == 19:
            assert storage.samples.settle() == (20 * 3 if storage.dialect == "sqlite" else 0)
    storage.samples.roll_up()  # the clock is years past T0: every minute is closed
    now = T0 + timedelta(minutes=40)
    cutoff_ms = round((now - timedelta(minutes=15)).timestamp() * 1000)
    old_raw = count(storage, raw(storage), raw(storage).c.ts_ms < cutoff_ms)
    assert old_raw == 25 * 3
    batches: list[tuple[str, int]] = []
    deleted = storage.retention.prune(
        now,
        raw_retention=timedelta(minutes=15),
        rollup_1m_retention=timedelta(days=1),
        batch_rows=10,
        on_batch=lambda table, n: batches.append((table, n)),
    )
    assert deleted == old_raw
    assert count(storage, raw(storage)) == 15 * 3
    assert count(storage, raw(storage), raw(storage).c.ts_ms < cutoff_ms) == 0
    assert count(storage, t.rollup_1m) == 40 * 3
    assert count(storage, t.rollup_1h) == 3
    if storage.dialect == "sqlite":  # minutes 0-19 moved, 20-24 recent
        assert batches == [("samples", 10), ("samples", 10)] * 3 + [("samples_recent", 5)] * 3
    else:
        assert batches == [("samples", 10), ("samples", 10), ("samples", 5)] * 3
    # the rollups still answer for the pruned range
    series = storage.samples.series("h1", "cpu_percent", T0, now, max_points=30)
    assert series.resolution == "1m"
    assert series.bucket_seconds == 120
    assert len(series.points) == 20


def test_prune_defaults_keep_a_week_of_raw_data(storage: Storage) -> None:
    """With default retentions, 6-day-old raw rows stay and 8-day-old ones go."""
    now = T0 + timedelta(days=8)
    storage.samples.ingest(batch(T0), T0)
    storage.samples.ingest(batch(T0 + timedelta(days=2)), T0)
    assert storage.retention.prune(now) == 3
    assert count(storage, raw(storage)) == 3


def test_upgrade_from_v1_keeps_data_and_adds_what_is_missing(db_url: str) -> None:
    """A v1 database (no alert_events.silenced, a metric column missing, no samples_recent)
    opens as v2, data kept; the missing column comes last in ``samples`` but not in the new
    ``samples_recent``, and roll-ups over both still aggregate each metric's own column."""
    store = Storage.open(db_url)
    store.samples.ingest(batch(T0, cpu=12.0), T0)
    store.samples.ingest(batch(T0 + seconds(1), cpu=14.0), T0)
    store.rules.put(RULE)
    store.samples.settle()
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE alert_events DROP COLUMN silenced"))
        conn.execute(sa.text("ALTER TABLE samples DROP COLUMN m_pids"))
        conn.execute(sa.text("DROP TABLE samples_recent"))
        conn.execute(sa.update(t.schema_version).values(version=1))
    store.close()

    store = Storage.open(db_url)
    try:
        assert store.upgraded_from == 1
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(t.schema_version.c.version)).scalar() == SCHEMA_VERSION
            columns = {c["name"] for c in sa.inspect(conn).get_columns("samples")}
        assert "m_pids" in columns
        assert count(store, raw(store)) == 6
        assert store.rules.get("r1") == RULE
        series = store.samples.series("h1", "cpu_percent", T0, T0 + seconds(5))
        assert [p[1] for p in series.points] == [12.0, 14.0]
        ev = alert_event(T0, fingerprint="f", rule_id="r1", silenced=True)
        store.history.append([ev])
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(t.alert_events.c.silenced)).scalar() is True
        store.samples.ingest(batch(T0 + seconds(2), cpu=16.0), T0)
        assert count(store, raw(store)) == 9
        store.samples.roll_up()
        assert every_bucket(store, t.rollup_1m) == expected_from_raw(store, 60_000)
    finally:
        store.close()


def test_upgrade_from_v2_renames_the_host_state(db_url: str) -> None:
    """A v2 database stored a reporting host as ``up``; v3 reads ``running``, containers keep
    their Docker state."""
    store = Storage.open(db_url)
    store.samples.ingest(batch(T0, containers=1, stopped=True), T0)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.machines).where(t.machines.c.kind == "host").values(state="up"))
        conn.execute(sa.update(t.schema_version).values(version=2))
    store.close()
    store = Storage.open(db_url)
    try:
        assert store.upgraded_from == 2
        host, container = store.samples.machine("h1"), store.samples.machine("h1:c0")
        assert host is not None and container is not None
        assert (host.state, container.state) == ("running", "exited")
    finally:
        store.close()


def test_a_newer_schema_is_refused(db_url: str) -> None:
    """A database written by a newer srvmon is not touched: clear StorageError."""
    from srvmon_server.storage import StorageError

    store = Storage.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.schema_version).values(version=SCHEMA_VERSION + 1))
    store.close()
    try:
        Storage.open(db_url)
    except StorageError as error:
        assert "newer than this srvmon" in str(error)
    else:
        raise AssertionError("opening a newer schema must fail")


def test_upgrade_from_v5_lets_restart_counts_be_absent(db_url: str) -> None:
    """A v5 database (restart_count NOT NULL, 0 for hosts) opens as v6: rows, ids and the
    unique key kept, hosts' placeholder 0 cleared, a container without a count storable.

    On SQLite the v5 table here also lacks a column the current layout has
    (``last_received_ms``) and has one it no longer has: the rebuild copies the columns
    both tables have, as it must once a later version adds columns to ``machines``."""
    from srvmon_core.schema import Batch, ContainerSample

    store = Storage.open(db_url)
    store.samples.ingest(batch(T0, containers=1), T0)
    with store.engine.connect() as conn:
        before = conn.execute(sa.select(t.machines.c.key, t.machines.c.id)).all()
    sqlite = store.dialect == "sqlite"
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.machines).values(restart_count=0))
        if sqlite:  # rebuild the v5 table: NOT NULL DEFAULT 0, one column less, one more
            conn.exec_driver_sql("ALTER TABLE machines RENAME TO machines_new")
            conn.exec_driver_sql("DROP INDEX ix_machines_host_id")
            ddl = str(sa.schema.CreateTable(t.machines).compile(conn))
            ddl = ddl.replace(
                "restart_count INTEGER,", "restart_count INTEGER DEFAULT '0' NOT NULL,"
            ).replace("last_received_ms BIGINT,", "retired_column TEXT,")
            assert "NOT NULL," in ddl and "last_received_ms" not in ddl
            conn.exec_driver_sql(ddl)
            conn.exec_driver_sql("CREATE INDEX ix_machines_host_id ON machines (host_id)")
            kept = ", ".join(c.name for c in t.machines.c if c.name != "last_received_ms")
            conn.exec_driver_sql(f"INSERT INTO machines ({kept}) SELECT {kept} FROM machines_new")
            conn.exec_driver_sql("DROP TABLE machines_new")
        else:
            conn.exec_driver_sql(
                "ALTER TABLE machines MODIFY restart_count INTEGER NOT NULL DEFAULT 0"
            )
        conn.execute(sa.update(t.schema_version).values(version=5))
    store.close()

    store = Storage.open(db_url)
    try:
        assert store.upgraded_from == 5
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(t.schema_version.c.version)).scalar() == 6
            assert conn.execute(sa.select(t.machines.c.key, t.machines.c.id)).all() == before
            columns = {c["name"]: c for c in sa.inspect(conn).get_columns("machines")}
        assert columns["restart_count"]["nullable"] is True
        assert "retired_column" not in columns
        host, c0 = store.samples.machines()
        assert (host.key, host.restart_count) == ("h1", None)
        assert (c0.key, c0.restart_count) == ("h1:c0", 0)
        if sqlite:  # the column the v5 table lacked exists now, empty
            assert (host.last_received, c0.last_received) == (None, None)
        legacy = ContainerSample(id="j1", name="c0", restart_count=None, cpu_percent=1.0)
        store.samples.ingest(Batch(host_id="h1", hostname="h1.room", timestamp=T0 + seconds(1),
                                   containers=(legacy,)), T0)  # fmt: skip
        record = store.samples.machine("h1:c0")
        assert record is not None
        assert record.restart_count is None
        assert "restart_count" not in record.metrics
        # the unique key survived the rebuild
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(sa.insert(t.machines).values(**_copy_of(conn, "h1")))
    finally:
        store.close()


def _copy_of(conn: sa.Connection, key: str) -> dict[str, object]:
    row = conn.execute(sa.select(t.machines).where(t.machines.c.key == key)).mappings().one()
    return {k: v for k, v in row.items() if k != "id"}
