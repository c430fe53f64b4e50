"""The alert engine's threshold lifecycle, table-driven: one series of values per case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from srvmon_core.engine import AlertEvent, EngineState, active_alerts, evaluate_batch
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import Batch, HostSample

pytestmark = pytest.mark.core

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def host_sample(cpu: float = 10.0, memory: float = 20.0) -> HostSample:
    return HostSample(
        cpu_percent=cpu,
        load_1=0.1,
        load_5=0.1,
        load_15=0.1,
        memory_total_bytes=100,
        memory_used_bytes=int(memory),
        memory_available_bytes=100 - int(memory),
        memory_percent=memory,
    )


def host_batch(at: float, cpu: float | None, host_id: str = "h1") -> Batch:
    """A batch of host h1 at T0 + at seconds; cpu None = a batch without a host sample."""
    return Batch(
        host_id=host_id,
        hostname=f"{host_id}.example",
        timestamp=T0 + timedelta(seconds=at),
        host=None if cpu is None else host_sample(cpu=cpu),
    )


def cpu_rule(**kw: object) -> Rule:
    base: dict[str, object] = dict(
        id="cpu", name="CPU", selector=Selector(kind="host"), metric="cpu_percent"
    )
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


def run(rule: Rule, points: list[tuple[float, float | None]]) -> list[AlertEvent]:
    state = EngineState()
    events: list[AlertEvent] = []
    for at, cpu in points:
        state, fired = evaluate_batch(
            [rule], state, host_batch(at, cpu), T0 + timedelta(seconds=at)
        )
        events.extend(fired)
    return events


def summary(events: list[AlertEvent]) -> list[tuple[float, str, str, str, str]]:
    return [
        ((e.at - T0).total_seconds(), e.kind, e.from_state, e.to_state, e.level) for e in events
    ]


CASES = [
    pytest.param(
        dict(warn=80.0),
        [(0, 50), (1, 85), (2, 70)],
        [(1, "firing", "ok", "firing", "warning"), (2, "resolved", "firing", "resolved", "none")],
        id="for-0-fires-at-once-and-resolves",
    ),
    pytest.param(
        dict(warn=80.0, for_seconds=10),
        [(0, 85), (5, 85), (9.9, 85), (10, 85), (11, 85)],
        [
            (0, "pending", "ok", "pending", "warning"),
            (10, "firing", "pending", "firing", "warning"),
        ],
        id="for-duration-pending-then-firing",
    ),
    pytest.param(
        dict(warn=80.0, for_seconds=10),
        [(0, 85), (5, 70), (6, 85), (15, 85), (16, 85)],
        [
            (0, "pending", "ok", "pending", "warning"),
            (5, "cancelled", "pending", "ok", "none"),
            (6, "pending", "ok", "pending", "warning"),
            (16, "firing", "pending", "firing", "warning"),
        ],
        id="dip-during-pending-cancels-and-restarts-the-timer",
    ),
    pytest.param(
        dict(warn=80.0, warn_recovery=75.0),
        [(0, 81), (1, 78), (2, 75), (3, 74.9)],
        [(0, "firing", "ok", "firing", "warning"), (3, "resolved", "firing", "resolved", "none")],
        id="hysteresis-stays-until-below-recovery",
    ),
    pytest.param(
        dict(warn=80.0),
        [(0, 80), (1, 79.99)],
        [(0, "firing", "ok", "firing", "warning"), (1, "resolved", "firing", "resolved", "none")],
        id="threshold-inclusive-recovery-defaults-to-threshold",
    ),
    pytest.param(
        dict(warn=80.0, crit=90.0, crit_recovery=85.0),
        [(0, 82), (1, 95), (2, 87), (3, 84), (4, 50)],
        [
            (0, "firing", "ok", "firing", "warning"),
            (1, "escalated", "firing", "firing", "critical"),
            (3, "deescalated", "firing", "firing", "warning"),
            (4, "resolved", "firing", "resolved", "none"),
        ],
        id="escalation-and-de-escalation-with-crit-hysteresis",
    ),
    pytest.param(
        dict(crit=90.0),
        [(0, 95), (1, 50)],
        [(0, "firing", "ok", "firing", "critical"), (1, "resolved", "firing", "resolved", "none")],
        id="crit-only-rule",
    ),
    pytest.param(
        dict(direction="below", warn=20.0, crit=10.0, warn_recovery=25.0),
        [(0, 30), (1, 15), (2, 5), (3, 22), (4, 26)],
        [
            (1, "firing", "ok", "firing", "warning"),
            (2, "escalated", "firing", "firing", "critical"),
            (3, "deescalated", "firing", "firing", "warning"),
            (4, "resolved", "firing", "resolved", "none"),
        ],
        id="below-direction-with-recovery",
    ),
    pytest.param(
        dict(warn=80.0, window_seconds=3.0, window_agg="avg"),
        [(0, 100), (1, 70), (2, 70), (3, 70), (4, 100), (5, 100)],
        # window keeps samples newer than now-3s: avg(100)=100 fires; avg(100,70)=85;
        # avg(100,70,70)=80; avg(70,70,70)=70 resolves; avg(70,70,100)=80 fires.
        [
            (0, "firing", "ok", "firing", "warning"),
            (3, "resolved", "firing", "resolved", "none"),
            (4, "firing", "ok", "firing", "warning"),
        ],
        id="window-avg",
    ),
    pytest.param(
        dict(warn=80.0, window_seconds=2.0, window_agg="max"),
        [(0, 90), (1, 10), (2, 10), (3, 10)],
        [(0, "firing", "ok", "firing", "warning"), (2, "resolved", "firing", "resolved", "none")],
        id="window-max-holds-the-peak-for-the-window",
    ),
    pytest.param(
        dict(warn=80.0, for_seconds=10),
        [(0, 85), (5, None), (8, None), (10, 85)],
        [
            (0, "pending", "ok", "pending", "warning"),
            (10, "firing", "pending", "firing", "warning"),
        ],
        id="no-data-keeps-pending-and-its-timer",
    ),
    pytest.param(
        dict(warn=80.0),
        [(0, 85), (1, None), (2, None), (3, 70)],
        [(0, "firing", "ok", "firing", "warning"), (3, "resolved", "firing", "resolved", "none")],
        id="no-data-does-not-resolve",
    ),
    pytest.param(
        dict(warn=80.0, repeat_seconds=5.0),
        [(0, 85), (2, 85), (4.9, 85), (5, 85), (7, 85), (10, 85), (11, 50)],
        [
            (0, "firing", "ok", "firing", "warning"),
            (5, "repeat", "firing", "firing", "warning"),
            (10, "repeat", "firing", "firing", "warning"),
            (11, "resolved", "firing", "resolved", "none"),
        ],
        id="repeat-interval",
    ),
    pytest.param(
        dict(warn=80.0, enabled=False),
        [(0, 99), (1, 99)],
        [],
        id="disabled-rule-never-fires",
    ),
]


@pytest.mark.parametrize(("rule_kw", "points", "expected"), CASES)
def test_threshold_lifecycle(
    rule_kw: dict[str, object],
    points: list[tuple[float, float | None]],
    expected: list[tuple[float, str, str, str, str]],
) -> None:
    """Each value series yields exactly the listed transition events, nothing else."""
    assert summary(run(cpu_rule(**rule_kw), points)) == expected


def test_event_fields_carry_value_threshold_and_start() -> None:
    """An event names rule, machine, metric, the value seen, the threshold and when it began."""
    events = run(cpu_rule(warn=80.0, crit=90.0, for_seconds=5), [(0, 85), (5, 86), (6, 93)])
    pending, firing, escalated = events
    assert firing.rule_id == "cpu" and firing.rule_name == "CPU"
    assert firing.machine_key == "h1" and firing.host_id == "h1"
    assert firing.machine_name == "h1.example" and firing.metric == "cpu_percent"
    assert (pending.value, pending.threshold) == (85.0, 80.0)
    assert (firing.value, firing.threshold) == (86.0, 80.0)
    assert (escalated.value, escalated.threshold) == (93.0, 90.0)
    assert pending.started_at == firing.started_at == escalated.started_at == T0
    assert len({e.fingerprint for e in events}) == 1
    data = escalated.to_dict()
    assert data["at"] == "2026-01-01T00:00:06Z" and data["level"] == "critical"


def test_fingerprint_differs_per_machine_and_rule() -> None:
    """The fingerprint is a function of rule id and machine key only."""
    rules = [cpu_rule(warn=50.0), cpu_rule(id="cpu2", warn=50.0)]
    state = EngineState()
    events: list[AlertEvent] = []
    for host in ("a", "b"):
        state, fired = evaluate_batch(rules, state, host_batch(0, 60, host), T0)
        events.extend(fired)
    assert len({e.fingerprint for e in events}) == 4


def test_active_alerts_lists_pending_and_firing() -> None:
    """active_alerts shows pending and firing alerts, most severe first."""
    rules = [cpu_rule(warn=50.0, for_seconds=60), cpu_rule(id="hot", crit=90.0)]
    state = EngineState()
    state, _ = evaluate_batch(rules, state, host_batch(0, 95), T0)
    active = active_alerts(state)
    assert [(a.rule_id, a.state, a.level, a.since, a.value) for a in active] == [
        ("hot", "firing", "critical", T0, 95.0),
        ("cpu", "pending", "warning", T0, 95.0),
    ]
    state, _ = evaluate_batch(rules, state, host_batch(1, 10), T0 + timedelta(seconds=1))
    assert active_alerts(state) == []


def test_engine_uses_the_most_specific_threshold() -> None:
    """Per-machine thresholds override the fleet default in evaluation, not only in listing."""
    fleet = cpu_rule(id="fleet", selector=Selector(), warn=50.0)
    glob = cpu_rule(id="glob", selector=Selector(machine="web*"), warn=70.0)
    exact = cpu_rule(id="exact", selector=Selector(machine="web1"), warn=90.0)
    rules = [fleet, glob, exact]
    state = EngineState()
    fired: list[tuple[str, str]] = []
    for host in ("web1", "web2", "db1"):
        state, events = evaluate_batch(rules, state, host_batch(0, 80, host), T0)
        fired.extend((e.machine_key, e.rule_id) for e in events)
    assert fired == [("web2", "glob"), ("db1", "fleet")]


@pytest.mark.parametrize(
    ("rule_kw", "points", "threshold"),
    [
        (dict(warn=80.0), [(0, 90), (1, 70)], 80.0),
        (dict(warn=80.0, warn_recovery=75.0), [(0, 90), (1, 70)], 75.0),
        (dict(crit=90.0), [(0, 95), (1, 70)], 90.0),
        (dict(warn=80.0, crit=90.0, crit_recovery=85.0), [(0, 95), (1, 70)], 85.0),
    ],
)
def test_resolved_event_carries_the_recovery_threshold(
    rule_kw: dict[str, object], points: list[tuple[float, float | None]], threshold: float
) -> None:
    """A resolved event names the recovery threshold crossed (the threshold if none is set)."""
    resolved = run(cpu_rule(**rule_kw), points)[-1]
    assert (resolved.kind, resolved.value, resolved.threshold) == ("resolved", 70.0, threshold)
