"""Silences act at once on live alerts (srvmon_core.silencing): a silence created or ended
while an alert fires flips its flag with a `silenced` / `unsilenced` event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from srvmon_core.alert_state import AlertEvent, EngineState
from srvmon_core.engine import active_alerts, evaluate_batch
from srvmon_core.rules import Rule, Selector
from srvmon_core.silences import Silence, SilenceMatchers
from srvmon_core.silencing import apply_silences, next_boundary
from srvmon_core.testing import make_batch, make_host_sample

pytestmark = pytest.mark.core

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RULES = [
    Rule(
        id="cpu",
        name="CPU high",
        selector=Selector(kind="host"),
        metric="cpu_percent",
        warn=50.0,
        crit=90.0,
    ),
    Rule(
        id="load",
        name="Load",
        selector=Selector(kind="host"),
        metric="load_1",
        warn=4.0,
        for_seconds=60.0,
    ),
]


def feed(
    state: EngineState, at: datetime, cpu: float, load: float, silences: list[Silence]
) -> list[AlertEvent]:
    batch = make_batch(
        host_id="h1",
        hostname="vm",
        timestamp=at,
        host=make_host_sample(cpu_percent=cpu, load_1=load),
        containers=(),
    )
    return evaluate_batch(RULES, state, batch, at, silences)[1]


def silence(start: datetime, end: datetime, **matchers: str) -> Silence:
    return Silence(
        id="s1",
        matchers=SilenceMatchers(**matchers),
        starts_at=start,
        ends_at=end,
        created_at=start,
    )


def test_a_silence_created_on_a_firing_alert_flips_it_and_ending_renotifies() -> None:
    """firing (loud) → silence on vm → `silenced` event (itself silenced), the active alert
    says silenced; an escalation meanwhile is silenced; when the silence ends, `unsilenced`
    (not silenced, to_state firing: notified again); a second apply adds nothing."""
    state = EngineState()
    fired = feed(state, T0, 70.0, 0.1, [])
    assert [(e.kind, e.silenced, e.hostname) for e in fired] == [("firing", False, "vm")]
    assert [a.silenced for a in active_alerts(state)] == [False]

    at = T0 + timedelta(seconds=10)
    quiet = silence(at, at + timedelta(minutes=1), machine="vm")
    state.take_changes()
    _, events = apply_silences(state, [quiet], at)
    assert [(e.kind, e.from_state, e.to_state, e.silenced, e.value) for e in events] == [
        ("silenced", "firing", "firing", True, 70.0)
    ]
    assert [s.key for s in state.take_changes().saved] == ["h1"]  # the flag is saved
    assert [(a.rule_id, a.silenced) for a in active_alerts(state)] == [("cpu", True)]
    assert apply_silences(state, [quiet], at)[1] == []

    later = at + timedelta(seconds=20)
    escalated = feed(state, later, 95.0, 0.1, [quiet])
    assert [(e.kind, e.silenced) for e in escalated] == [("escalated", True)]

    ended = at + timedelta(minutes=1)
    _, events = apply_silences(state, [quiet], ended)
    assert [(e.kind, e.level, e.to_state, e.silenced, e.value) for e in events] == [
        ("unsilenced", "critical", "firing", False, 95.0)
    ]
    assert [a.silenced for a in active_alerts(state)] == [False]


def test_pending_alerts_flip_too_and_the_flag_survives_a_restore() -> None:
    """A pending alert matched by a new silence (rule glob) flips; restoring the saved
    machine keeps the flag, so a restarted server does not announce it again."""
    state = EngineState()
    assert [e.kind for e in feed(state, T0, 10.0, 8.0, [])] == ["pending"]
    quiet = silence(T0, T0 + timedelta(hours=1), rule="Lo*")
    _, events = apply_silences(state, [quiet], T0)
    assert [(e.kind, e.to_state, e.rule_id) for e in events] == [("silenced", "pending", "load")]
    restored = EngineState()
    restored.restore(state.snapshot("h1"), T0)
    assert [a.silenced for a in active_alerts(restored)] == [True]
    assert apply_silences(restored, [quiet], T0)[1] == []
    # firing later, still silenced: the event is created silenced
    fired = feed(restored, T0 + timedelta(seconds=61), 10.0, 8.0, [quiet])
    assert [(e.kind, e.silenced) for e in fired] == [("firing", True)]


def test_a_silence_that_starts_later_and_the_next_boundary() -> None:
    """A silence in the future matches nothing yet; next_boundary names its start, then
    its end, then nothing."""
    state = EngineState()
    feed(state, T0, 70.0, 0.1, [])
    start, end = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    later = silence(start, end, machine="v?")
    assert apply_silences(state, [later], T0)[1] == []
    assert next_boundary([later], T0) == start
    assert [e.kind for e in apply_silences(state, [later], start)[1]] == ["silenced"]
    assert next_boundary([later], start) == end
    assert next_boundary([later], end) is None


def test_a_resolved_alert_under_a_silence_leaves_no_flag() -> None:
    """Resolved while silenced: the resolve event is silenced (not notified); the alert is
    gone, so ending the silence emits nothing."""
    state = EngineState()
    quiet = silence(T0, T0 + timedelta(minutes=1), machine="*")
    assert [(e.kind, e.silenced) for e in feed(state, T0, 70.0, 0.1, [quiet])] == [("firing", True)]
    resolved = feed(state, T0 + timedelta(seconds=5), 10.0, 0.1, [quiet])
    assert [(e.kind, e.silenced) for e in resolved] == [("resolved", True)]
    assert apply_silences(state, [quiet], T0 + timedelta(minutes=2))[1] == []
