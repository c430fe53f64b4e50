"""The alerting service's per-machine state between two processes on one database: the
API a server replica uses when a Kafka partition (a set of hosts) moves to it."""

from __future__ import annotations

from datetime import timedelta

from srvmon_core.rules import Rule, Selector
from srvmon_core.view import batch_view
from srvmon_server.alerting import Alerting
from srvmon_server.storage import Storage
from tests.server.harness import T0, make_batch

CPU = Rule(
    id="cpu",
    name="CPU",
    selector=Selector(kind="host"),
    metric="cpu_percent",
    warn=80.0,
    for_seconds=30,
)


def only_cpu_rule(storage: Storage) -> None:
    for rule in storage.rules.all():
        storage.rules.delete(rule.id)
    storage.rules.put(CPU)


def test_a_pending_alert_moves_with_its_host_and_fires_once(db_url: str) -> None:
    """Process A sees h1 pending at t=0 and releases h1 at t=12; process B adopts h1 and
    fires at t=30 with started_at t=0. A keeps h2, and exactly one firing event is stored."""
    first, second = Storage.open(db_url), Storage.open(db_url)
    try:
        a = Alerting(first)
        a.load(T0)
        only_cpu_rule(first)
        a.reload_rules()
        b = Alerting(second)
        b.load(T0)
        at = [T0 + timedelta(seconds=s) for s in (0, 10, 12, 30)]
        assert [
            e.to_state for e in a.on_batch(batch_view(make_batch("h1", at[0], 95.0)), at[0])
        ] == ["pending"]
        a.on_batch(batch_view(make_batch("h2", at[0], 10.0)), at[0])
        a.on_batch(batch_view(make_batch("h1", at[1], 96.0)), at[1])
        a.release_hosts(["h1"])
        assert sorted(a.state.machines) == ["h2"]
        assert a.active() == []

        assert b.adopt_hosts(["h1"], at[2]) == 1
        assert [(x.machine_key, x.state, x.since) for x in b.active()] == [("h1", "pending", T0)]
        fired = b.on_batch(batch_view(make_batch("h1", at[3], 95.0)), at[3])
        assert [(e.to_state, e.started_at) for e in fired] == [("firing", T0)]
        assert a.on_tick(at[3]) == []
        page = first.history.page(start=None, end=None)
        assert [(e.event.machine_key, e.event.to_state) for e in page.entries] == [
            ("h1", "firing"),
            ("h1", "pending"),
        ]
    finally:
        first.close()
        second.close()


def test_a_restart_saves_and_restores_every_live_machine(db_url: str) -> None:
    """Windows and last values that only the periodic save writes survive a clean stop:
    the saved pending alert carries the latest value, not the one of its transition."""
    storage = Storage.open(db_url)
    try:
        a = Alerting(storage)
        a.load(T0)
        only_cpu_rule(storage)
        a.reload_rules()
        a.on_batch(batch_view(make_batch("h1", T0, 91.0)), T0)
        later = T0 + timedelta(seconds=5)
        a.on_batch(batch_view(make_batch("h1", later, 99.0)), later)
        a.save_periodic()
        b = Alerting(storage)
        b.load(later)
        assert [(x.state, x.value, x.since) for x in b.active()] == [("pending", 99.0, T0)]
    finally:
        storage.close()
