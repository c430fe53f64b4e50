"""Engine state survives a restart; rule changes and series replays behave."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srvmon_core.engine import EngineState, active_alerts, check_silence, evaluate_batch
from srvmon_core.errors import DecodeError
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_core.series import evaluate_series

pytestmark = pytest.mark.core

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def batch(seconds: float, cpu: float, host_id: str = "h1", restarts: int = 0) -> Batch:
    return Batch(
        host_id=host_id,
        hostname=host_id,
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
        containers=(ContainerSample(id="c1", name="web", restart_count=restarts),),
    )


CPU = Rule(
    id="cpu",
    name="CPU",
    selector=Selector(kind="host"),
    metric="cpu_percent",
    warn=80.0,
    for_seconds=10,
    window_seconds=5,
)


def restore(state: EngineState) -> EngineState:
    return EngineState.from_dict(json.loads(json.dumps(state.to_dict())))


def test_round_trip_mid_pending_keeps_the_timer() -> None:
    """A restarted server fires at the original deadline, not for_seconds after restart."""
    state = EngineState()
    state, events = evaluate_batch([CPU], state, batch(0, 90), at(0))
    assert [e.kind for e in events] == ["pending"]
    state, _ = evaluate_batch([CPU], state, batch(4, 90), at(4))
    restored = restore(state)
    assert restored == state
    restored, events = evaluate_batch([CPU], restored, batch(10, 90), at(10))
    assert [(e.kind, e.started_at) for e in events] == [("firing", T0)]


def test_round_trip_keeps_window_and_restart_memory() -> None:
    """The metric window and the last restart count survive; a restart after restore fires."""
    restarted = Rule(id="r", name="r", kind="container_restarted")
    rules = [CPU, restarted]
    state = EngineState()
    for second, cpu in ((0, 100), (1, 100), (2, 100)):
        state, _ = evaluate_batch(rules, state, batch(second, cpu, restarts=2), at(second))
    restored = restore(state)
    # window avg over (100, 100, 100, 20) is 80: still breaching thanks to the kept window
    restored, events = evaluate_batch(rules, restored, batch(3, 20, restarts=3), at(3))
    assert [e.kind for e in events] == ["firing"] and events[0].rule_id == "r"
    assert [a.rule_id for a in active_alerts(restored)] == ["cpu", "r"]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (None, "$"),
        ({"version": 99}, "$.version"),
        ({"version": 1, "machines": {}}, "$.machines"),
        ({"version": 1, "machines": [{"ref": 3}]}, "$.machines[0]"),
        ({"version": 1, "alerts": [{"rule_id": "x"}]}, "$.alerts[0]"),
        (
            {
                "version": 1,
                "alerts": [
                    {
                        "machine_key": "h",
                        "rule_id": "x",
                        "rule_name": "x",
                        "metric": None,
                        "level": 7,
                    }
                ],
            },
            "$.alerts[0].level",
        ),
    ],
)
def test_from_dict_rejects_junk_with_a_path(data: object, path: str) -> None:
    """Junk saved state raises DecodeError naming where it is, never a bare exception."""
    with pytest.raises(DecodeError) as info:
        EngineState.from_dict(data)
    assert info.value.path.startswith(path)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=30))
def test_round_trip_anywhere_gives_the_same_events(values: list[float]) -> None:
    """Saving and restoring between any two batches never changes the event stream."""
    plain = EngineState()
    saved = EngineState()
    plain_events, saved_events = [], []
    for second, cpu in enumerate(values):
        plain, fired = evaluate_batch([CPU], plain, batch(second, cpu), at(second))
        plain_events.extend(fired)
        saved, fired = evaluate_batch([CPU], restore(saved), batch(second, cpu), at(second))
        saved_events.extend(fired)
    assert saved_events == plain_events


def test_removing_a_rule_resolves_its_alerts() -> None:
    """Alerts of a rule that no longer applies resolve on the next evaluation."""
    hot = Rule(id="hot", name="hot", metric="cpu_percent", crit=50.0)
    state = EngineState()
    state, events = evaluate_batch([hot], state, batch(0, 90), at(0))
    assert [e.kind for e in events] == ["firing"]
    state, events = check_silence([], state, at(1))
    assert [(e.kind, e.rule_id, e.machine_key) for e in events] == [("resolved", "hot", "h1")]
    assert active_alerts(state) == []


def test_evaluate_series_end_to_end() -> None:
    """Two hosts replayed: cpu pending→firing→resolved on h1; h2 and its container go silent.

    Silence is checked before each batch, so the silent events at t=7 precede h1's batch.
    """
    silent = Rule(id="silent", name="silent", kind="silent", silent_seconds=5, level="critical")
    rules = [Rule(id="cpu", name="CPU", metric="cpu_percent", warn=80.0, for_seconds=2), silent]
    batches = []
    for second in range(10):
        batches.append(batch(second, 90 if 2 <= second <= 6 else 10))
        if second < 3:
            batches.append(batch(second, 10, host_id="h2"))
    events = evaluate_series(rules, batches)
    assert [
        (int((e.at - T0).total_seconds()), e.kind, e.rule_id, e.machine_key) for e in events
    ] == [
        (2, "pending", "cpu", "h1"),
        (4, "firing", "cpu", "h1"),
        (7, "firing", "silent", "h2"),
        (7, "firing", "silent", "h2:web"),
        (7, "resolved", "cpu", "h1"),
    ]


def test_changed_rules_take_effect_at_once() -> None:
    """Passing an edited rule set re-plans every machine: a raised threshold resolves."""
    low = Rule(id="cpu", name="CPU", metric="cpu_percent", warn=50.0)
    high = Rule(id="cpu", name="CPU", metric="cpu_percent", warn=95.0)
    state = EngineState()
    state, events = evaluate_batch([low], state, batch(0, 90), at(0))
    assert [e.kind for e in events] == ["firing"]
    state, events = evaluate_batch([high], state, batch(1, 90), at(1))
    assert [(e.kind, e.threshold) for e in events] == [("resolved", 95.0)]
