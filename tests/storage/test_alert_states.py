"""The engine's state per machine: a step writes only the machines it changed, loads can
be limited to some hosts, and a v3 database's single-row state is split on upgrade."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa

from srvmon_core.engine import EngineState, active_alerts, evaluate_batch
from srvmon_core.rules import Rule, Selector
from srvmon_server.storage import Storage
from srvmon_server.storage import tables as t
from srvmon_server.storage.clock import to_ms
from tests.server.harness import FakeClock
from tests.storage.factory import T0, batch

CPU = Rule(
    id="cpu",
    name="CPU",
    selector=Selector(kind="host"),
    metric="cpu_percent",
    warn=80.0,
    for_seconds=30,
)


def saved_at(storage: Storage) -> dict[str, int]:
    with storage.engine.connect() as conn:
        rows = conn.execute(sa.select(t.alert_machines.c.key, t.alert_machines.c.saved_at_ms))
        return {key: int(ms) for key, ms in rows}


def test_a_transition_rewrites_only_its_machine(db_url: str) -> None:
    """20 hosts x 3 machines saved once; one host's pending transition rewrites that one row
    (with its event, in the same transaction); the rest keep their first save time."""
    clock = FakeClock(T0)
    storage = Storage.open(db_url, clock=clock)
    try:
        state = EngineState()
        for h in range(20):
            evaluate_batch([CPU], state, batch(T0, host_id=f"h{h:02d}"), T0)
        storage.alert_states.save(state.take_periodic())
        first = saved_at(storage)
        assert len(first) == 60 and set(first.values()) == {to_ms(T0)}

        clock.advance(5)
        _, events = evaluate_batch([CPU], state, batch(T0, cpu=95.0, host_id="h07"), clock.now)
        storage.alert_states.save(state.take_changes(), events)
        second = saved_at(storage)
        assert {k for k in second if second[k] != first[k]} == {"h07"}
        page = storage.history.page(start=None, end=None)
        assert [(e.event.machine_key, e.event.to_state) for e in page.entries] == [
            ("h07", "pending")
        ]
    finally:
        storage.close()


def test_load_all_or_by_host_and_remove(storage: Storage) -> None:
    """load() gives every machine back equal; load(hosts) only theirs; host_ids lists the
    hosts; a removed machine's row is gone."""
    state = EngineState()
    for host in ("a", "b", "c"):
        evaluate_batch([CPU], state, batch(T0, cpu=95.0, host_id=host, containers=1), T0)
    changes = state.take_periodic()
    storage.alert_states.save(changes)
    loaded = storage.alert_states.load()
    assert [s.key for s in loaded] == ["a", "a:c0", "b", "b:c0", "c", "c:c0"]
    assert loaded == sorted(changes.saved, key=lambda s: s.key)
    assert [s.key for s in storage.alert_states.load(["b", "zz"])] == ["b", "b:c0"]
    assert storage.alert_states.host_ids() == ["a", "b", "c"]

    evaluate_batch([CPU], state, batch(T0 + timedelta(seconds=1), host_id="b", containers=0), T0)
    removal = state.take_changes()
    assert removal.removed == ("b:c0",)
    storage.alert_states.save(removal)
    assert [s.key for s in storage.alert_states.load(["b"])] == ["b"]


def test_restored_from_storage_the_pending_timer_goes_on(storage: Storage) -> None:
    """Saved with its transition, a pending alert restored from the database fires at the
    original deadline."""
    state = EngineState()
    _, events = evaluate_batch([CPU], state, batch(T0, cpu=95.0, containers=0), T0)
    storage.alert_states.save(state.take_changes(), events)
    other = EngineState()
    for snapshot in storage.alert_states.load(["h1"]):
        other.restore(snapshot, T0 + timedelta(seconds=10))
    assert [(a.state, a.since) for a in active_alerts(other)] == [("pending", T0)]
    deadline = T0 + timedelta(seconds=30)
    _, fired = evaluate_batch([CPU], other, batch(deadline, cpu=95.0, containers=0), deadline)
    assert [(e.to_state, e.started_at) for e in fired] == [("firing", T0)]


def test_upgrade_from_v3_splits_the_single_row_state(db_url: str) -> None:
    """A v3 database kept the whole engine state in row 1 of alert_state; opened as v4 its
    machines are rows of alert_machines (the pending alert included) and the old table is
    gone."""
    state = EngineState()
    evaluate_batch([CPU], state, batch(T0, cpu=95.0, host_id="h1", containers=1), T0)
    evaluate_batch([CPU], state, batch(T0, host_id="h2", containers=0), T0)
    store = Storage.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alert_machines"))
        conn.execute(
            sa.text(
                "CREATE TABLE alert_state (id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
                "saved_at_ms BIGINT NOT NULL)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO alert_state (id, body, saved_at_ms) VALUES (1, :body, 0)"),
            {"body": json.dumps(state.to_dict())},
        )
        conn.execute(sa.update(t.schema_version).values(version=3))
    store.close()

    store = Storage.open(db_url)
    try:
        assert store.upgraded_from == 3
        with store.engine.connect() as conn:
            assert "alert_state" not in sa.inspect(conn).get_table_names()
        loaded = store.alert_states.load()
        assert [s.key for s in loaded] == ["h1", "h1:c0", "h2"]
        restored = EngineState()
        for snapshot in loaded:
            restored.restore(snapshot, T0 + timedelta(seconds=5))
        assert [(a.machine_key, a.state, a.since) for a in active_alerts(restored)] == [
            ("h1", "pending", T0)
        ]
    finally:
        store.close()
