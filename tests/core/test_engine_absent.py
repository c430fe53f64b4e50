"""Property: the alert engine never evaluates a metric that a sample does not carry.

A metric is absent from a sample when the flat view leaves it out (``host_metrics`` /
``container_metrics``): a host field listed in ``not_collected`` (whatever placeholder it
holds), an optional figure that is ``None``, or a figure derived from an empty list. For
every such metric, under rule sets holding every rule kind, a run of batches in which the
metric comes and goes must never let it move an alert:

* a rule on a metric that no batch carries never emits an event and holds no alert state;
* every event of a threshold rule comes from a batch that carries the rule's metric;
* the placeholder values of ``not_collected`` fields change nothing at all (two runs that
  differ only in them emit equal events and end with equal active alerts);
* a container without a restart count reports no restart count: ``container_restarted``
  events carry no value then, and an unchanged container id with no count is no restart.

Runs with nothing but attrs, cattrs and Hypothesis (the ``core`` tox env).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srvmon_core.engine import AlertEvent, EngineState, active_alerts, check_silence, evaluate_batch
from srvmon_core.metrics import (
    CONTAINER_METRIC_NAMES,
    HOST_METRIC_NAMES,
    container_metrics,
    host_metrics,
)
from srvmon_core.rules import Rule, RuleKind, Selector
from srvmon_core.schema import Batch, ContainerSample, HostSample, NetIO, Temperature

pytestmark = pytest.mark.core

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULE_KINDS: tuple[str, ...] = get_args(RuleKind)
HOST_FIELDS = frozenset(a.name for a in attrs.fields(HostSample))
HOST_FIELD_METRICS = sorted(HOST_METRIC_NAMES & HOST_FIELDS)
"""Host metrics a source can leave out through ``not_collected`` (with any placeholder)."""
HOST_DERIVED_METRICS = sorted(HOST_METRIC_NAMES - HOST_FIELDS)
"""Host metrics computed from lists (net, temperatures, disks): absent when those are empty."""
OPTIONAL_HOST_FIELDS = frozenset(
    a.name for a in attrs.fields(HostSample) if a.default is None and a.name in HOST_METRIC_NAMES
)
CONTAINER_METRICS = sorted(CONTAINER_METRIC_NAMES)
"""Every container figure is optional: absent when ``None``."""
INT_FIELDS = frozenset(
    {"memory_used_bytes", "memory_available_bytes", "memory_total_bytes", "process_count"}
    | {"swap_total_bytes", "swap_used_bytes", "memory_working_set_bytes", "pids"}
    | {"restart_count"}
)

values = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False)
placeholders = st.sampled_from([0.0, 1.0, 50.0, 999.0]) | values
"""What a source may leave in a field it does not collect; the legacy decoder writes 0."""


def _fit(name: str, value: float) -> float | int:
    return int(value) if name in INT_FIELDS else value


# --- rule sets: every kind, thresholds around the values and the placeholders ------------


@st.composite
def threshold_rules(draw: Any, metric: str, kind: str, prefix: str) -> Rule:
    """One valid threshold rule on ``metric`` whose levels lie in the range values take."""
    direction = draw(st.sampled_from(["above", "below"]))
    sign = 1.0 if direction == "above" else -1.0
    warn = draw(st.none() | values)
    crit = draw(st.none() | values) if warn is not None else draw(values)
    if warn is not None and crit is not None and sign * crit < sign * warn:
        warn, crit = crit, warn
    gap = draw(st.floats(min_value=0.0, max_value=20.0))
    return Rule(
        id=f"{prefix}.{direction}.{draw(st.integers(0, 9))}",
        name=f"{metric} {direction}",
        selector=Selector(kind=draw(st.sampled_from([kind, "any"]))),  # type: ignore[arg-type]
        metric=metric,
        direction=direction,  # type: ignore[arg-type]
        warn=warn,
        crit=crit,
        warn_recovery=None if warn is None else warn - sign * gap,
        for_seconds=draw(st.sampled_from([0.0, 0.0, 2.0, 30.0])),
        window_seconds=draw(st.sampled_from([0.0, 0.0, 5.0, 60.0])),
        window_agg=draw(st.sampled_from(["avg", "max"])),
        repeat_seconds=draw(st.sampled_from([None, 1.0])),
    )


def rules_of_every_kind(
    metric: str, kind: str, control: str
) -> st.SearchStrategy[tuple[list[Rule], set[str]]]:
    """Rules on ``metric`` (their ids returned too), one on a ``control`` metric that is
    always carried, and one rule of each other kind."""

    @st.composite
    def build(draw: Any) -> tuple[list[Rule], set[str]]:
        watched = draw(
            st.lists(
                threshold_rules(metric, kind, "watched"),
                min_size=1,
                max_size=3,
                unique_by=lambda r: r.id,
            )
        )
        others = [
            draw(threshold_rules(control, kind, "control")),
            Rule(
                id="silent",
                name="silent",
                kind="silent",
                selector=Selector(kind=kind),  # type: ignore[arg-type]
                silent_seconds=draw(st.sampled_from([1.0, 10.0])),
            ),
        ]
        others += [
            Rule(
                id=rule_kind,
                name=rule_kind,
                kind=rule_kind,  # type: ignore[arg-type]
                selector=Selector(kind="container"),
                for_seconds=draw(st.sampled_from([0.0, 5.0])),
                hold_seconds=draw(st.sampled_from([None, 3.0])),
            )
            for rule_kind in RULE_KINDS
            if rule_kind.startswith("container_")
        ]
        assert {r.kind for r in [*watched, *others]} == set(RULE_KINDS)
        return [*watched, *others], {r.id for r in watched}

    return build()


# --- runs ----------------------------------------------------------------------------------

Step = tuple[float, Batch]
"""(seconds after T0, batch): the engine sees the batch at that instant."""


def run(rules: list[Rule], steps: list[Step]) -> tuple[list[list[AlertEvent]], EngineState]:
    """Each batch through ``evaluate_batch``, then ``check_silence`` a little later; the
    events of each step (the batch's, then the silence check's)."""
    state = EngineState()
    per_step: list[list[AlertEvent]] = []
    for index, (at, batch) in enumerate(steps):
        now = T0 + timedelta(seconds=at)
        state, events = evaluate_batch(rules, state, batch, now)
        later = steps[index + 1][0] if index + 1 < len(steps) else at + 12.0
        state, quiet = check_silence(rules, state, T0 + timedelta(seconds=(at + later) / 2))
        per_step.append([*events, *quiet])
    return per_step, state


def batch_events(per_step: list[list[AlertEvent]]) -> list[tuple[int, AlertEvent]]:
    return [(i, e) for i, events in enumerate(per_step) for e in events]


def assert_never_evaluated(
    per_step: list[list[AlertEvent]],
    state: EngineState,
    watched: set[str],
    carried: list[bool],
    metric: str,
) -> None:
    """The three absolute checks shared by the host and the container properties."""
    for index, event in batch_events(per_step):
        if event.rule_id in watched:
            assert carried[index], (
                f"{event.kind} event of {event.rule_id} at step {index}, where {metric} "
                f"is absent: value {event.value}"
            )
    if not any(carried):
        fired = [e for _, e in batch_events(per_step) if e.rule_id in watched]
        assert fired == [], f"{metric} is never carried, yet: {fired}"
        held = {rule for alerts in state.alerts.values() for rule in alerts if rule in watched}
        assert held == set(), f"alert state kept for rules on an absent metric: {held}"
        assert [a for a in active_alerts(state) if a.rule_id in watched] == []


# --- hosts ---------------------------------------------------------------------------------


def host_sample(
    metric: str, carried: bool, value: float, placeholder: float, mode: str
) -> HostSample:
    """A host reading where ``metric`` holds ``value``, or is absent in the way ``mode``
    names: ``not_collected`` (the field keeps ``placeholder``), ``none`` or ``empty``."""
    fields: dict[str, Any] = dict(
        cpu_percent=42.0,
        load_1=0.5,
        load_5=0.5,
        load_15=0.5,
        memory_total_bytes=1000,
        memory_used_bytes=400,
        memory_available_bytes=600,
        memory_percent=40.0,
        net=(NetIO(interface="eth0", rx_bytes_per_s=10.0, tx_bytes_per_s=10.0),),
        temperatures=(Temperature(sensor="cpu", celsius=40.0),),
    )
    not_collected: tuple[str, ...] = ()
    if metric in HOST_FIELDS:
        if carried:
            fields[metric] = _fit(metric, value)
        elif mode == "none" and metric in OPTIONAL_HOST_FIELDS:
            fields[metric] = None
        else:
            fields[metric] = _fit(metric, placeholder)
            not_collected = (metric,)
    elif metric.startswith("net_"):
        if carried:
            fields["net"] = (
                NetIO(
                    interface="eth0",
                    rx_bytes_per_s=value,
                    tx_bytes_per_s=value,
                    rx_errors_per_s=value,
                    tx_errors_per_s=0.0,
                    rx_drops_per_s=value,
                    tx_drops_per_s=0.0,
                ),
            )
        elif mode == "none":
            fields["net"] = (NetIO(interface="eth0"),)
        else:
            fields["net"] = ()
    elif metric == "temperature_max_celsius":
        fields["temperatures"] = (Temperature(sensor="cpu", celsius=value),) if carried else ()
    elif metric == "disk_used_percent_max":
        from srvmon_core.schema import DiskUsage

        fields["disks"] = (
            (DiskUsage(mount="/", device="sda1", fstype="ext4", total_bytes=100, used_bytes=1,
                       used_percent=value),)
            if carried
            else ()
        )  # fmt: skip
    else:  # pragma: no cover - every host metric is a field or derived above
        raise AssertionError(metric)
    sample = HostSample(**fields, not_collected=not_collected)
    assert (metric in host_metrics(sample)) is carried
    return sample


@attrs.frozen
class HostRun:
    """Per batch: whether the metric is carried, its value, the placeholder when it is not,
    how it is absent (``not_collected`` or ``none``), and the seconds since the previous."""

    carried: list[bool]
    real: list[float]
    held: list[float]
    modes: list[str]
    gaps: list[float]


@st.composite
def host_runs(draw: Any) -> HostRun:
    n = draw(st.integers(min_value=1, max_value=6))
    carried = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if draw(st.booleans()):
        carried = [False] * n  # often: a source that never sends it (the legacy collector)
    return HostRun(
        carried=carried,
        real=draw(st.lists(values, min_size=n, max_size=n)),
        held=draw(st.lists(placeholders, min_size=n, max_size=n)),
        modes=draw(st.lists(st.sampled_from(["not_collected", "none"]), min_size=n, max_size=n)),
        gaps=draw(st.lists(st.sampled_from([0.5, 1.0, 3.0, 20.0, 61.0]), min_size=n, max_size=n)),
    )


def host_steps(metric: str, run: HostRun) -> list[Step]:
    steps: list[Step] = []
    at = 0.0
    for i, is_carried in enumerate(run.carried):
        at += run.gaps[i]
        host = host_sample(metric, is_carried, run.real[i], run.held[i], run.modes[i])
        batch = Batch(host_id="h1", hostname="h1", timestamp=T0 + timedelta(seconds=at), host=host)
        steps.append((at, batch))
    return steps


def _comparable(per_step: list[list[AlertEvent]], state: EngineState) -> tuple[Any, Any]:
    return per_step, active_alerts(state)


@pytest.mark.parametrize("metric", [*HOST_FIELD_METRICS, *HOST_DERIVED_METRICS])
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_an_absent_host_metric_is_never_evaluated(metric: str, data: st.DataObject) -> None:
    """Rules of every kind; a host metric that comes and goes (or never comes)."""
    control = "cpu_percent" if metric != "cpu_percent" else "memory_percent"
    rules, watched = data.draw(rules_of_every_kind(metric, "host", control))
    first = data.draw(host_runs())
    per_step, state = run(rules, host_steps(metric, first))
    assert_never_evaluated(per_step, state, watched, first.carried, metric)
    if metric in HOST_FIELDS:
        n = len(first.held)
        second = attrs.evolve(first, held=data.draw(st.lists(placeholders, min_size=n, max_size=n)))
        again = run(rules, host_steps(metric, second))
        assert _comparable(*again) == _comparable(per_step, state), (
            f"the placeholder of {metric} changed the alerts: {first.held} vs {second.held}"
        )


def test_the_issue_case_memory_percent_below_5_on_a_legacy_host() -> None:
    """The reported bug: a legacy host's memory_percent is a 0.0 placeholder in
    not_collected; ``memory_percent below 5`` must stay silent while a rule on a metric
    the document does carry (memory_used_bytes) still fires from the same batches."""
    below = Rule(
        id="mem-low",
        name="memory low",
        selector=Selector(kind="host"),
        metric="memory_percent",
        direction="below",
        warn=5.0,
    )
    used = Rule(
        id="mem-used",
        name="memory used",
        selector=Selector(kind="host"),
        metric="memory_used_bytes",
        warn=100.0,
    )
    legacy = HostRun(
        carried=[False] * 3, real=[0.0] * 3, held=[0.0] * 3, modes=["not_collected"] * 3,
        gaps=[1.0] * 3,
    )  # fmt: skip
    steps = host_steps("memory_percent", legacy)
    per_step, _ = run([below, used], steps)
    fired = [(e.rule_id, e.kind, e.value) for _, e in batch_events(per_step)]
    assert fired == [("mem-used", "firing", 400.0)]


# --- containers ----------------------------------------------------------------------------


def container_sample(metric: str, carried: bool, value: float, cid: str) -> ContainerSample:
    fields: dict[str, Any] = dict(
        id=cid,
        name="web",
        cpu_percent=5.0,
        memory_working_set_bytes=100,
        restart_count=1,
    )
    fields[metric] = _fit(metric, value) if carried else None
    sample = ContainerSample(**fields)
    assert (metric in container_metrics(sample)) is carried
    return sample


@st.composite
def container_runs(draw: Any) -> tuple[list[bool], list[float], list[str], list[float]]:
    n = draw(st.integers(min_value=1, max_value=6))
    carried = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if draw(st.booleans()):
        carried = [False] * n
    real = draw(st.lists(values, min_size=n, max_size=n))
    ids = draw(st.lists(st.sampled_from(["id-a", "id-a", "id-b"]), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0.5, 1.0, 3.0, 20.0]), min_size=n, max_size=n))
    return carried, real, ids, gaps


def container_steps(
    metric: str, carried: list[bool], real: list[float], ids: list[str], gaps: list[float]
) -> list[Step]:
    steps: list[Step] = []
    at = 0.0
    for i, is_carried in enumerate(carried):
        at += gaps[i]
        sample = container_sample(metric, is_carried, real[i], ids[i])
        batch = Batch(
            host_id="h1", hostname="h1", timestamp=T0 + timedelta(seconds=at), containers=(sample,)
        )
        steps.append((at, batch))
    return steps


@pytest.mark.parametrize("metric", CONTAINER_METRICS)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_an_absent_container_metric_is_never_evaluated(metric: str, data: st.DataObject) -> None:
    """Rules of every kind; a container figure that comes and goes (``None`` when absent)."""
    control = "cpu_percent" if metric != "cpu_percent" else "memory_working_set_bytes"
    rules, watched = data.draw(rules_of_every_kind(metric, "container", control))
    carried, real, ids, gaps = data.draw(container_runs())
    steps = container_steps(metric, carried, real, ids, gaps)
    per_step, state = run(rules, steps)
    assert_never_evaluated(per_step, state, watched, carried, metric)
    if metric != "restart_count":
        return
    restarts = [(i, e) for i, e in batch_events(per_step) if e.rule_id == "container_restarted"]
    for index, event in restarts:
        if not carried[index]:
            assert event.value is None, f"a restart count nobody reported: {event}"
    if len(set(ids)) == 1 and sum(carried) <= 1:
        assert restarts == [], f"an absent restart count read as a restart: {restarts}"


def _restart_run(counts: list[int | None], ids: list[str]) -> list[tuple[float, str, Any]]:
    rule = Rule(
        id="restarted",
        name="restarted",
        kind="container_restarted",
        selector=Selector(kind="container"),
        hold_seconds=100.0,
    )
    steps: list[Step] = []
    for i, (count, cid) in enumerate(zip(counts, ids, strict=True)):
        sample = ContainerSample(id=cid, name="web", restart_count=count)
        steps.append(
            (float(i), Batch(host_id="h", hostname="h", timestamp=T0, containers=(sample,)))
        )
    per_step, _ = run([rule], steps)
    return [((e.at - T0).total_seconds(), e.kind, e.value) for _, e in batch_events(per_step)]


RESTART_CASES: list[tuple[list[int | None], list[str], Callable[[Any], bool]]] = [
    ([None, None, None], ["a", "a", "a"], lambda events: events == []),
    ([3, None, 3], ["a", "a", "a"], lambda events: events == []),
    ([3, None, 4], ["a", "a", "a"], lambda events: events == [(2.0, "firing", 4.0)]),
    ([None, None], ["a", "b"], lambda events: events == [(1.0, "firing", None)]),
]


@pytest.mark.parametrize(("counts", "ids", "expected"), RESTART_CASES)
def test_restarts_without_a_count(
    counts: list[int | None], ids: list[str], expected: Callable[[Any], bool]
) -> None:
    """An absent count is no information: not a restart, not a reset of the last known
    count; a new container id still is a restart (reported without a count)."""
    events = _restart_run(counts, ids)
    assert expected(events), events
