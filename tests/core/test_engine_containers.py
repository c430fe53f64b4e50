"""Built-in rule kinds: stopped, unhealthy, restarted, silent, and removed containers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from srvmon_core.engine import AlertEvent, EngineState, check_silence, evaluate_batch
from srvmon_core.rules import Rule, Selector
from srvmon_core.schema import AgentStats, Batch, ContainerSample, HostSample

pytestmark = pytest.mark.core

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def container(name: str = "web", **kw: object) -> ContainerSample:
    base: dict[str, object] = dict(id=f"{name}-id1", name=name)
    base.update(kw)
    return ContainerSample(**base)  # type: ignore[arg-type]


def batch(
    seconds: float,
    *containers: ContainerSample,
    host_id: str = "h1",
    source: str = "cgroup",
) -> Batch:
    return Batch(
        host_id=host_id,
        hostname=host_id,
        timestamp=at(seconds),
        host=HostSample(
            cpu_percent=1.0,
            load_1=0,
            load_5=0,
            load_15=0,
            memory_total_bytes=1,
            memory_used_bytes=0,
            memory_available_bytes=1,
            memory_percent=0,
        ),
        containers=containers,
        agent=AgentStats(container_source=source),
    )


def feed(rules: list[Rule], batches: list[Batch]) -> list[tuple[float, str, str, str]]:
    state = EngineState()
    events: list[AlertEvent] = []
    for b in batches:
        state, fired = evaluate_batch(rules, state, b, b.timestamp)
        events.extend(fired)
    return [((e.at - T0).total_seconds(), e.kind, e.machine_key, e.level) for e in events]


STOPPED = Rule(id="stopped", name="stopped", kind="container_stopped", level="critical")
UNHEALTHY = Rule(id="unhealthy", name="unhealthy", kind="container_unhealthy", level="critical")
RESTARTED = Rule(id="restarted", name="restarted", kind="container_restarted", hold_seconds=10)


@pytest.mark.parametrize(
    ("rules", "batches", "expected"),
    [
        pytest.param(
            [STOPPED],
            [
                batch(0, container()),
                batch(1, container(state="exited", exit_code=137)),
                batch(2, container(state="exited", exit_code=137)),
                batch(3, container(state="running")),
            ],
            [(1, "firing", "h1:web", "critical"), (3, "resolved", "h1:web", "none")],
            id="stopped-fires-and-resolves-when-running-again",
        ),
        pytest.param(
            [STOPPED],
            [batch(0, container(state="dead")), batch(1, container(state="paused"))],
            [(0, "firing", "h1:web", "critical"), (1, "resolved", "h1:web", "none")],
            id="dead-counts-as-stopped-paused-does-not",
        ),
        pytest.param(
            [UNHEALTHY],
            [
                batch(0, container(health="starting")),
                batch(1, container(health="unhealthy")),
                batch(2, container(health="healthy")),
            ],
            [(1, "firing", "h1:web", "critical"), (2, "resolved", "h1:web", "none")],
            id="unhealthy",
        ),
        pytest.param(
            [RESTARTED],
            [
                batch(0, container(restart_count=3)),
                batch(1, container(restart_count=3)),
                batch(2, container(restart_count=4)),
                batch(5, container(restart_count=4)),
                batch(11.9, container(restart_count=4)),
                batch(12, container(restart_count=4)),
            ],
            [(2, "firing", "h1:web", "warning"), (12, "resolved", "h1:web", "none")],
            id="restart-count-rose-fires-and-resolves-after-hold",
        ),
        pytest.param(
            [RESTARTED],
            [
                batch(0, container()),
                batch(1, container(id="web-id2")),
                batch(8, container(id="web-id2")),
                batch(9, container(id="web-id3")),
                batch(18.9, container(id="web-id3")),
                batch(19, container(id="web-id3")),
            ],
            [(1, "firing", "h1:web", "warning"), (19, "resolved", "h1:web", "none")],
            id="new-id-same-name-is-a-restart-and-another-restart-extends-the-hold",
        ),
        pytest.param(
            [STOPPED],
            [
                batch(0, container(state="exited"), container("db")),
                batch(1, container("db")),
            ],
            [(0, "firing", "h1:web", "critical"), (1, "resolved", "h1:web", "none")],
            id="removed-container-resolves-its-alerts",
        ),
        pytest.param(
            [STOPPED],
            [
                batch(0, container(state="exited")),
                batch(1, source="none"),
                batch(2, container(state="exited")),
            ],
            [(0, "firing", "h1:web", "critical")],
            id="no-container-source-does-not-remove-containers",
        ),
        pytest.param(
            [Rule(id="s", name="s", kind="container_stopped", selector=Selector(machine="db"))],
            [batch(0, container(state="exited"), container("db", state="exited"))],
            [(0, "firing", "h1:db", "warning")],
            id="selector-by-container-name",
        ),
        pytest.param(
            [
                Rule(
                    id="s",
                    name="s",
                    kind="container_stopped",
                    selector=Selector(labels={"com.docker.compose.project": "shop*"}),
                )
            ],
            [
                batch(
                    0,
                    container(state="exited", labels={"com.docker.compose.project": "shop-eu"}),
                    container("db", state="exited", labels={"com.docker.compose.project": "ci"}),
                )
            ],
            [(0, "firing", "h1:web", "warning")],
            id="selector-by-label-glob",
        ),
    ],
)
def test_container_kinds(
    rules: list[Rule], batches: list[Batch], expected: list[tuple[float, str, str, str]]
) -> None:
    """Each container series yields exactly the listed events."""
    assert feed(rules, batches) == expected


SILENT = Rule(
    id="silent", name="silent", kind="silent", selector=Selector(kind="host"), silent_seconds=30
)


def test_silent_host_fires_then_recovers() -> None:
    """No batch for silent_seconds fires (once); the next batch resolves it."""
    state = EngineState()
    state, _ = evaluate_batch([SILENT], state, batch(0), at(0))
    kinds: list[tuple[float, str, float | None]] = []
    for second in (10, 29.9, 30, 31, 45):
        state, fired = check_silence([SILENT], state, at(second))
        kinds.extend((second, e.kind, e.value) for e in fired)
    assert kinds == [(30, "firing", 30.0)]
    state, fired = evaluate_batch([SILENT], state, batch(46), at(46))
    assert [(e.kind, e.machine_key, e.started_at) for e in fired] == [("resolved", "h1", at(30))]
    state, fired = check_silence([SILENT], state, at(47))
    assert fired == []


def test_silence_allows_for_the_callers_backlog() -> None:
    """``grace_seconds`` (how far the caller's own ingest is behind) lengthens every silent
    limit: a host quiet 40 s is not silent with 15 s of backlog, and is at 46 s."""
    state = EngineState()
    state, _ = evaluate_batch([SILENT], state, batch(0), at(0))
    state, fired = check_silence([SILENT], state, at(40), grace_seconds=15)
    assert fired == []
    state, fired = check_silence([SILENT], state, at(46), grace_seconds=15)
    assert [(e.kind, e.machine_key, e.value) for e in fired] == [("firing", "h1", 46.0)]


def test_every_silent_limit_holds_to_the_microsecond() -> None:
    """Two silent rules (30 s warning, 60 s critical) and a backlog of 0.25 s: each host
    fires a rule exactly when its quiet time reaches that rule's limit plus the backlog,
    not a microsecond before, whatever else the sweep skips."""
    slow = Rule(
        id="silent-crit", name="silent crit", kind="silent", level="critical", silent_seconds=60
    )
    rules = [SILENT, slow]
    grace = 0.25
    quiet_by_host = {
        "early": 30.249999,  # 1 µs short of the first limit
        "first": 30.25,  # exactly the first limit
        "between": 45.0,
        "second_early": 60.249999,
        "second": 60.25,
        "long": 3600.0,
    }
    now = at(4000)
    state = EngineState()
    for host_id, quiet in quiet_by_host.items():
        seen_at = now - timedelta(seconds=quiet)
        state, _ = evaluate_batch(rules, state, batch(0, host_id=host_id), seen_at)
    state, fired = check_silence(rules, state, now, grace_seconds=grace)
    expected = sorted(
        (host_id, rule.id)
        for host_id, quiet in quiet_by_host.items()
        for rule in rules
        if quiet >= (rule.silent_seconds or 0.0) + grace
    )
    assert sorted((e.machine_key, e.rule_id) for e in fired) == expected
    assert len(expected) == 7  # first, between, second_early, second, long + 2 criticals
    # heard from again: both of its alerts resolve at the next batch
    state, back = evaluate_batch(rules, state, batch(0, host_id="long"), now)
    assert sorted((e.rule_id, e.kind) for e in back) == [
        ("silent", "resolved"),
        ("silent-crit", "resolved"),
    ]
    # one microsecond later the two that were short reach their limits; nothing else moves
    later = now + timedelta(microseconds=1)
    state, fired = check_silence(rules, state, later, grace_seconds=grace)
    assert sorted((e.machine_key, e.rule_id) for e in fired) == [
        ("early", "silent"),
        ("second_early", "silent-crit"),
    ]


def test_silent_only_for_the_quiet_host() -> None:
    """Hosts that keep reporting stay quiet while another host goes silent."""
    state = EngineState()
    state, _ = evaluate_batch([SILENT], state, batch(0, host_id="a"), at(0))
    state, _ = evaluate_batch([SILENT], state, batch(0, host_id="b"), at(0))
    state, _ = evaluate_batch([SILENT], state, batch(25, host_id="b"), at(25))
    state, fired = check_silence([SILENT], state, at(40))
    assert [(e.machine_key, e.level) for e in fired] == [("a", "warning")]


def test_silent_with_for_seconds_goes_pending_first() -> None:
    """for_seconds also applies to silent rules: silent_seconds, then pending, then firing."""
    rule = Rule(id="s", name="s", kind="silent", silent_seconds=10, for_seconds=5)
    state = EngineState()
    state, _ = evaluate_batch([rule], state, batch(0), at(0))
    seen = []
    for second in (10, 14, 15):
        state, fired = check_silence([rule], state, at(second))
        seen.extend((second, e.kind) for e in fired)
    assert seen == [(10, "pending"), (15, "firing")]


def test_a_batch_without_host_sample_still_ends_host_silence() -> None:
    """A batch carrying only containers proves the collector is alive: silence resolves."""
    state = EngineState()
    state, _ = evaluate_batch([SILENT], state, batch(0), at(0))
    state, fired = check_silence([SILENT], state, at(40))
    assert [e.kind for e in fired] == ["firing"]
    only_containers = Batch(
        host_id="h1", hostname="h1", timestamp=at(41), containers=(container(),)
    )
    state, fired = evaluate_batch([SILENT], state, only_containers, at(41))
    assert [(e.kind, e.machine_key) for e in fired] == [("resolved", "h1")]
