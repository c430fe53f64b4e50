"""Keys at the column limit are stored on both backends; v4 databases holding keys that are
no longer valid, or an inventory frozen by a future timestamp, are repaired on upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from srvmon_core.schema import (
    CONTAINER_NAME_MAX,
    HOST_ID_MAX,
    Batch,
    ContainerSample,
    container_name_for,
    host_id_for,
    host_id_problem,
)
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from tests.storage.factory import T0, batch, container, host_sample, seconds


def test_the_longest_keys_fit_both_backends(storage: Storage) -> None:
    """A 128-character host id with a 126-character container name makes a 255-character
    key: the widest the key columns hold (MariaDB VARCHAR(255) refuses more)."""
    host_id, name = "h" * HOST_ID_MAX, "c" * CONTAINER_NAME_MAX
    wide = Batch(
        host_id=host_id,
        hostname="x" * 255,
        timestamp=T0,
        host=host_sample(5.0),
        containers=(
            ContainerSample(id="f" * 64, name=name, image="i" * 512, state="s" * 32, pids=3),
        ),
    )
    assert storage.samples.ingest(wide, T0).stored == 2
    record = storage.samples.machine(f"{host_id}:{name}")
    assert record is not None and len(record.key) == 255
    assert record.image == "i" * 512 and record.state == "s" * 32
    assert storage.samples.machine(host_id) is not None


def _downgrade_to_v4(store: Storage, renames: dict[str, tuple[str, str, str]]) -> None:
    """Rewrite machines to keys a v4 server accepted (key -> (new key, host id, name))."""
    with store.engine.begin() as conn:
        for key, (new_key, host_id, name) in renames.items():
            conn.execute(
                sa.update(t.machines)
                .where(t.machines.c.key == key)
                .values(key=new_key, host_id=host_id, name=name)
            )
        conn.execute(sa.update(t.schema_version).values(version=4))


def test_upgrade_renames_machines_whose_keys_are_no_longer_valid(db_url: str) -> None:
    """v4 let host ``coll:web2`` exist beside host ``coll``'s containers; v5 renames the
    host with the colon (and its container ``c/0``) to the valid, distinct ids a legacy
    document with those ids now maps to, and keeps their samples; valid machines keep
    their keys and samples untouched."""
    store = Storage.open(db_url)
    store.samples.ingest(batch(T0, host_id="coll", containers=0), T0)
    store.samples.ingest(Batch(host_id="coll", hostname="coll", timestamp=T0,
                               containers=(container("web", 3.0),)), T0)  # fmt: skip
    store.samples.ingest(batch(T0, host_id="evil", cpu=66.0, containers=1), T0)
    _downgrade_to_v4(
        store,
        {
            "evil": ("coll:web2", "coll:web2", "evil.room"),
            "evil:c0": ("coll:web2:c/0", "coll:web2", "c/0"),
        },
    )
    store.close()

    store = Storage.open(db_url)
    try:
        assert store.upgraded_from == 4
        keys = {r.key: r for r in store.samples.machines()}
        renamed_host = host_id_for("coll:web2")
        assert host_id_problem(renamed_host) is None and renamed_host.startswith("coll_web2--")
        renamed_container = f"{renamed_host}:{container_name_for('c/0')}"
        assert set(keys) == {"coll", "coll:web", renamed_host, renamed_container}
        assert keys[renamed_container].host_id == renamed_host
        points = store.samples.series(renamed_host, "cpu_percent", T0, T0 + seconds(1)).points
        assert [p[1] for p in points] == [66.0]
        assert keys["coll:web"].kind == "container" and keys["coll:web"].host_id == "coll"
    finally:
        store.close()


def test_upgrade_unfreezes_an_inventory_held_by_a_future_sample(db_url: str) -> None:
    """A v4 server stored a sample dated 2099, after which its inventory never moved
    (``UPDATE … WHERE latest_ts_ms <= ?``). v5 sets the machine's newest time back to its
    newest sane sample, so the next correct sample shows again."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = Storage.open(db_url, inventory_flush=timedelta(0))
    store.samples.ingest(batch(now - seconds(60), cpu=10.0, containers=0), now)
    store.samples.ingest(batch(datetime(2099, 1, 1, tzinfo=UTC), cpu=99.0, containers=0), now)
    store.samples.ingest(batch(now - seconds(30), cpu=20.0, containers=0), now)
    frozen = store.samples.machine("h1")
    assert frozen is not None and frozen.metrics["cpu_percent"] == 99.0  # the v4 behaviour
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.schema_version).values(version=4))
    store.close()

    store = Storage.open(db_url, inventory_flush=timedelta(0))
    try:
        record = store.samples.machine("h1")
        assert record is not None and record.last_seen == now - seconds(30)
        store.samples.ingest(batch(now - seconds(10), cpu=30.0, containers=0), now)
        record = store.samples.machine("h1")
        assert record is not None and record.metrics["cpu_percent"] == 30.0
        assert record.last_seen == now - seconds(10)
    finally:
        store.close()
