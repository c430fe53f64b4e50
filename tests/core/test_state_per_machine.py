"""Alert state per machine: a step marks only what it changed, a machine saves and
restores on its own, and a host's machines can be handed to another process mid-timer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from attrs import evolve

from srvmon_core.alert_state import MachineSnapshot, StateChanges
from srvmon_core.engine import EngineState, active_alerts, check_silence, evaluate_batch
from srvmon_core.errors import DecodeError
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import AgentStats, Batch, ContainerSample, HostSample

pytestmark = pytest.mark.core

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PENDING_CPU = Rule(
    id="cpu",
    name="CPU",
    selector=Selector(kind="host"),
    metric="cpu_percent",
    warn=80.0,
    for_seconds=30,
)
SILENT = Rule(id="quiet", name="quiet", kind="silent", silent_seconds=20, level="critical")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def batch(host: str, seconds: float, cpu: float = 10.0, containers: int = 2) -> Batch:
    return Batch(
        host_id=host,
        hostname=host,
        timestamp=at(seconds),
        host=HostSample(
            cpu_percent=cpu,
            load_1=0,
            load_5=0,
            load_15=0,
            memory_total_bytes=1,
            memory_used_bytes=0,
            memory_available_bytes=1,
            memory_percent=0,
        ),
        containers=tuple(
            ContainerSample(id=f"{host}-{i}", name=f"c{i}") for i in range(containers)
        ),
    )


def fleet(rules: list[Rule], hosts: int = 50) -> EngineState:
    """A state that has seen ``hosts`` hosts with 2 containers each, all saved once."""
    state = EngineState()
    for h in range(hosts):
        evaluate_batch(rules, state, batch(f"h{h:02d}", 0), at(0))
    state.take_periodic()
    return state


def through_json(changes: StateChanges) -> list[MachineSnapshot]:
    """What a store would give back: each document through JSON."""
    return [
        MachineSnapshot(key=s.key, host_id=s.host_id, document=json.loads(json.dumps(s.document)))
        for s in changes.saved
    ]


def test_a_transition_changes_only_its_machine() -> None:
    """One host of 50 (150 machines) breaching: take_changes holds that one host only;
    a quiet step holds nothing."""
    state = fleet([PENDING_CPU])
    assert len(state.machines) == 150
    _, events = evaluate_batch([PENDING_CPU], state, batch("h07", 1, cpu=95.0), at(1))
    assert [e.to_state for e in events] == ["pending"]
    changes = state.take_changes()
    assert [s.key for s in changes.saved] == ["h07"] and changes.removed == ()
    evaluate_batch([PENDING_CPU], state, batch("h08", 2), at(2))
    assert state.take_changes().empty


def test_the_periodic_save_keeps_live_and_new_machines_recent() -> None:
    """Periodic: machines seen since the last save that hold live state (a pending alert)
    or were never saved; machines that only reported again are not rewritten."""
    state = fleet([PENDING_CPU], hosts=3)
    evaluate_batch([PENDING_CPU], state, batch("h00", 1, cpu=95.0), at(1))
    state.take_changes()
    evaluate_batch([PENDING_CPU], state, batch("h00", 2, cpu=96.0), at(2))
    evaluate_batch([PENDING_CPU], state, batch("h01", 2), at(2))
    evaluate_batch([PENDING_CPU], state, batch("new", 2, containers=0), at(2))
    assert state.take_changes().empty  # pending → pending is no transition
    periodic = state.take_periodic()
    assert [s.key for s in periodic.saved] == ["h00", "new"]
    (h00,) = [s for s in periodic.saved if s.key == "h00"]
    assert h00.document["alerts"][0]["value"] == 96.0
    assert state.take_periodic().empty


def test_the_periodic_save_comes_in_chunks() -> None:
    """take_periodic(limit) gives at most ``limit`` machines, changed ones first, and says
    whether more wait; the chunks together are every machine, each once."""
    state = EngineState()
    for h in range(4):
        evaluate_batch([PENDING_CPU], state, batch(f"h{h}", 0, containers=1), at(0))
    evaluate_batch([PENDING_CPU], state, batch("h3", 1, cpu=95.0, containers=1), at(1))
    chunks = []
    while state.periodic_due:
        chunks.append([s.key for s in state.take_periodic(limit=3).saved])
    assert [len(c) for c in chunks] == [3, 3, 2]
    assert chunks[0][0] == "h3"
    assert sorted(k for c in chunks for k in c) == sorted(state.machines)


def test_a_removed_container_deletes_its_saved_row() -> None:
    """A container missing from its host's batch is forgotten; its saved row is removed."""
    state = fleet([PENDING_CPU], hosts=1)
    evaluate_batch([PENDING_CPU], state, batch("h00", 1, containers=1), at(1))
    assert state.take_changes() == StateChanges(saved=(), removed=("h00:c1",))
    not_listed = Batch(
        host_id="h00", hostname="h00", timestamp=at(2), agent=AgentStats(container_source="none")
    )
    evaluate_batch([PENDING_CPU], state, not_listed, at(2))
    assert state.take_changes().empty  # containers could not be listed: nothing removed


def test_a_restored_machine_fires_at_its_original_deadline() -> None:
    """Pending at t=0 (for 30 s), saved with the transition, restored in a new state at
    t=12: still pending at t=20, firing at t=30 with started_at t=0, exactly once."""
    rules = [PENDING_CPU]
    state = EngineState()
    evaluate_batch(rules, state, batch("h1", 0, cpu=95.0, containers=0), at(0))
    saved = through_json(state.take_changes())
    assert [s.key for s in saved] == ["h1"]

    other = EngineState()
    for snapshot in saved:
        other.restore(snapshot, at(12))
    assert [(a.state, a.since) for a in active_alerts(other)] == [("pending", at(0))]
    _, events = evaluate_batch(rules, other, batch("h1", 20, cpu=95.0, containers=0), at(20))
    assert events == []
    _, events = evaluate_batch(rules, other, batch("h1", 30, cpu=95.0, containers=0), at(30))
    assert [(e.to_state, e.started_at) for e in events] == [("firing", at(0))]
    _, events = evaluate_batch(rules, other, batch("h1", 31, cpu=95.0, containers=0), at(31))
    assert events == []


def test_restoring_never_fires_a_false_silent_alert() -> None:
    """Machines saved at t=0 without live alerts and restored at t=100 count as seen at
    t=100: silent fires 20 s later, not at once."""
    rules = [SILENT]
    state = EngineState()
    evaluate_batch(rules, state, batch("quiet", 0, containers=0), at(0))
    evaluate_batch(rules, state, batch("busy", 0, containers=0), at(0))
    saved = through_json(state.take_periodic())
    other = EngineState()
    for snapshot in saved:
        other.restore(snapshot, at(100))
    _, events = check_silence(rules, other, at(101))
    assert events == []
    _, events = check_silence(rules, other, at(120))
    assert sorted((e.machine_key, e.to_state, e.value) for e in events) == [
        ("busy", "firing", 20.0),
        ("quiet", "firing", 20.0),
    ]


def test_a_pending_silent_alert_keeps_its_clock_across_a_restore() -> None:
    """Silent for 20 s then pending for 10 s: pending at t=25 (saved with the transition),
    restored at t=100, it fires at the next check with the quiet time counted from t=0."""
    rules = [evolve(SILENT, for_seconds=10)]
    state = EngineState()
    evaluate_batch(rules, state, batch("gone", 0, containers=0), at(0))
    state.take_periodic()
    _, events = check_silence(rules, state, at(25))
    assert [(e.to_state, e.started_at) for e in events] == [("pending", at(25))]
    saved = through_json(state.take_changes())
    other = EngineState()
    for snapshot in saved:
        other.restore(snapshot, at(100))
    _, events = check_silence(rules, other, at(101))
    assert [(e.to_state, e.started_at, e.value) for e in events] == [("firing", at(25), 101.0)]


def test_a_host_handed_over_mid_timer_fires_once_in_the_new_process() -> None:
    """Process A evaluates h1 (pending at t=0) and h2; it releases h1 at t=15 (saving it);
    process B restores h1 and fires at t=30. A no longer knows h1 and emits nothing for it."""
    rules = [PENDING_CPU]
    a = EngineState()
    evaluate_batch(rules, a, batch("h1", 0, cpu=95.0), at(0))
    evaluate_batch(rules, a, batch("h2", 0), at(0))
    a.take_changes()
    evaluate_batch(rules, a, batch("h1", 10, cpu=97.0), at(10))
    released = a.release_hosts(["h1"])
    assert sorted(s.key for s in released.saved) == ["h1", "h1:c0", "h1:c1"]
    assert set(a.machines) == {"h2", "h2:c0", "h2:c1"}
    _, events = check_silence(rules, a, at(30))
    assert events == []

    b = EngineState()
    for snapshot in through_json(released):
        b.restore(snapshot, at(15))
    _, events = evaluate_batch(rules, b, batch("h1", 30, cpu=95.0), at(30))
    assert [(e.machine_key, e.to_state, e.started_at) for e in events] == [("h1", "firing", at(0))]


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"version": 1, "machine": {}, "alerts": []}, "$.version"),
        ({"version": 2, "machine": {"ref": {}}, "alerts": []}, "$.machine.ref.key"),
        (
            {
                "version": 2,
                "machine": {
                    "ref": {
                        "key": "h",
                        "kind": "host",
                        "host_id": "h",
                        "hostname": "h",
                        "name": "h",
                    },
                    "last_seen": "2026-01-01T00:00:00Z",
                },
                "alerts": "no",
            },
            "$.alerts",
        ),
    ],
)
def test_restore_rejects_junk_with_a_path(document: dict[str, object], path: str) -> None:
    """A saved machine that does not parse raises DecodeError naming the field."""
    with pytest.raises(DecodeError) as info:
        EngineState().restore(MachineSnapshot(key="h", host_id="h", document=document), T0)
    assert info.value.path == path


def test_a_snapshot_is_what_the_converter_gives_and_survives_json() -> None:
    """The written-out documents equal the converter's output (windows as lists), and a
    restored machine's state equals the original, window and timers included."""
    from srvmon_core.alert_state import CONVERTER

    rules = [evolve(PENDING_CPU, window_seconds=30)]
    state = EngineState()
    for second, cpu in enumerate((50.0, 95.0, 97.0)):
        evaluate_batch(rules, state, batch("h1", second, cpu=cpu, containers=1), at(second))
    snapshot = state.snapshot("h1")
    expected_alerts = [
        {**CONVERTER.unstructure(a), "window": [list(p) for p in a.window]}
        for a in state.alerts["h1"].values()
    ]
    assert snapshot.document["machine"] == CONVERTER.unstructure(state.machines["h1"])
    assert snapshot.document["alerts"] == expected_alerts
    assert len(snapshot.document["alerts"][0]["window"]) == 3
    other = EngineState()
    for saved in through_json(StateChanges(saved=(snapshot, state.snapshot("h1:c0")))):
        other.restore(saved, at(2))
    assert other.machines["h1"] == state.machines["h1"]
    assert other.alerts["h1"] == state.alerts["h1"]
