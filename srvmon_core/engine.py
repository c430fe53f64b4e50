"""The alert engine: a pure state machine that eats batches and returns alert events.

``evaluate_batch(rules, state, batch, now)`` and ``check_silence(rules, state, now)`` never
read a clock and never do I/O. For speed they MUTATE ``state`` in place and return the same
object; treat the returned state as the current one. State moves only through
:data:`srvmon_core.transitions.TRANSITIONS`; this module computes the signal.

An *alert* is one rule on one machine, identified by ``fingerprint(rule id, machine key)``.
Events are emitted only on transitions (and ``repeat`` events when a rule asks for them).
The value and state classes and their (de)serialization live in :mod:`srvmon_core.alert_state`
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from attrs import define

from srvmon_core.alert_state import (
    CONVERTER,
    STATE_VERSION,
    ActiveAlert,
    AlertEvent,
    AlertState,
    EngineState,
    MachineRef,
    MachineState,
    fingerprint,
)
from srvmon_core.metrics import host_metrics
from srvmon_core.rules import DEFAULT_HOLD_SECONDS, Rule, effective_rules
from srvmon_core.schema import Batch, ContainerSample, HostSample, container_key
from srvmon_core.transitions import EventKind, EventState, Signal, State, transition

LEVELS = ("none", "warning", "critical")
"""Level names by number: 0 none, 1 warning, 2 critical."""
STOPPED_STATES = frozenset({"exited", "dead"})
_INF = float("inf")

__all__ = [
    "CONVERTER",
    "LEVELS",
    "STATE_VERSION",
    "STOPPED_STATES",
    "ActiveAlert",
    "AlertEvent",
    "AlertState",
    "EngineState",
    "MachineRef",
    "MachineState",
    "active_alerts",
    "check_silence",
    "evaluate_batch",
    "fingerprint",
]


# --- compiled rules: precomputed per machine -----------------------------------------------

_THRESHOLD, _SILENT, _STOPPED, _RESTARTED, _UNHEALTHY = range(5)
_KIND_CODES = {
    "threshold": _THRESHOLD,
    "silent": _SILENT,
    "container_stopped": _STOPPED,
    "container_restarted": _RESTARTED,
    "container_unhealthy": _UNHEALTHY,
}


def _getter(metric: str, machine_kind: str) -> Callable[[Any], float | None]:
    """How a threshold check reads its metric: ``None`` when the sample does not carry it.

    A host field listed in ``not_collected`` holds a placeholder, never a reading: it reads
    as absent, exactly as the flat metrics (``host_metrics``) leave it out.
    """
    if machine_kind != "host":
        if hasattr(ContainerSample, metric):
            return lambda sample: getattr(sample, metric)
        return lambda sample: None
    if hasattr(HostSample, metric):
        return lambda sample: None if metric in sample.not_collected else getattr(sample, metric)
    return lambda sample: host_metrics(sample).get(metric)


class _Check:
    """One rule compiled for one machine kind. Thresholds are sign-folded: above-only."""

    __slots__ = (
        "code",
        "crit",
        "crit_rec",
        "for_seconds",
        "get",
        "level",
        "repeat",
        "rule",
        "sign",
        "warn",
        "warn_rec",
        "window",
        "window_max",
    )

    def __init__(self, rule: Rule, machine_kind: str) -> None:
        self.rule = rule
        self.code = _KIND_CODES[rule.kind]
        self.sign = 1.0 if rule.direction == "above" else -1.0
        s = self.sign
        self.warn = _INF if rule.warn is None else s * rule.warn
        self.crit = _INF if rule.crit is None else s * rule.crit
        self.warn_rec = self.warn if rule.warn_recovery is None else s * rule.warn_recovery
        self.crit_rec = self.crit if rule.crit_recovery is None else s * rule.crit_recovery
        self.for_seconds = 0.0 if self.code == _RESTARTED else rule.for_seconds
        self.window = rule.window_seconds
        self.window_max = rule.window_agg == "max"
        self.repeat = rule.repeat_seconds
        self.level = LEVELS.index(rule.level)
        self.get = _getter(rule.metric, machine_kind) if rule.metric else None

    def target(self, value: float, current: int) -> int:
        """The level a value calls for, with hysteresis around the current level."""
        sv = self.sign * value
        if current == 2:
            if sv >= self.crit_rec:
                return 2
            return 1 if sv >= self.warn_rec else 0
        if sv >= self.crit:
            return 2
        if current == 1:
            return 1 if sv >= self.warn_rec else 0
        return 1 if sv >= self.warn else 0

    def threshold(self, level: int, recovering: bool) -> float | None:
        """The configured threshold behind a level, in the rule's own sign."""
        if self.code == _SILENT:
            return self.rule.silent_seconds
        if self.code != _THRESHOLD or level == 0:
            return None
        rule = self.rule
        if level == 2:
            recovery = rule.crit if rule.crit_recovery is None else rule.crit_recovery
            return recovery if recovering else rule.crit
        recovery = rule.warn if rule.warn_recovery is None else rule.warn_recovery
        return recovery if recovering else rule.warn


@define
class _Plan:
    ref: MachineRef
    checks: list[_Check]


# --- the engine ----------------------------------------------------------------------------


def _plan_for(rules: Sequence[Rule], state: EngineState, ref: MachineRef) -> _Plan:
    plan = state.plans.get(ref.key)
    if plan is not None and (plan.ref is ref or plan.ref == ref):
        return plan
    compiled = state.compiled
    checks = []
    for rule in effective_rules(rules, ref):
        check = compiled.get((id(rule), ref.kind))
        if check is None:
            check = compiled[(id(rule), ref.kind)] = _Check(rule, ref.kind)
        checks.append(check)
    plan = _Plan(ref=ref, checks=checks)
    state.plans[ref.key] = plan
    return plan


def _sync_rules(rules: Sequence[Rule], state: EngineState, now: datetime) -> list[AlertEvent]:
    """Drop cached plans when the rule set changed; resolve alerts of rules that went away."""
    seen = state.rules_seen
    if len(seen) == len(rules) and all(a is b for a, b in zip(seen, rules, strict=True)):
        return []
    state.rules_seen = tuple(rules)  # strong references: ids in the caches stay unique
    state.plans.clear()
    state.compiled.clear()
    events: list[AlertEvent] = []
    for key, by_rule in list(state.alerts.items()):
        machine = state.machines.get(key)
        if machine is None:
            del state.alerts[key]
            continue
        plan = _plan_for(rules, state, machine.ref)
        live = {c.rule.id for c in plan.checks}
        for rule_id in [r for r in by_rule if r not in live]:
            _gone(by_rule.pop(rule_id), machine.ref, now, events)
        if not by_rule:
            del state.alerts[key]
    return events


def _gone(alert: AlertState, ref: MachineRef, now: datetime, events: list[AlertEvent]) -> None:
    if alert.state == "ok":
        return
    move = transition(alert.state, "gone")
    assert move.event is not None and move.event_to_state is not None
    events.append(
        _event(
            alert,
            ref=ref,
            kind=move.event,
            from_state=alert.state,
            to_state=move.event_to_state,
            level=0,
            now=now,
        )
    )


def _event(
    alert: AlertState,
    *,
    ref: MachineRef,
    kind: EventKind,
    from_state: State,
    to_state: EventState,
    level: int,
    now: datetime,
) -> AlertEvent:
    return AlertEvent(
        fingerprint=fingerprint(alert.rule_id, ref.key),
        kind=kind,
        rule_id=alert.rule_id,
        rule_name=alert.rule_name,
        machine_key=ref.key,
        machine_kind=ref.kind,
        machine_name=ref.name,
        host_id=ref.host_id,
        metric=alert.metric,
        level=LEVELS[level],
        from_state=from_state,
        to_state=to_state,
        value=alert.value,
        threshold=alert.threshold,
        started_at=alert.started_at,
        at=now,
    )


def _step(
    check: _Check,
    *,
    alerts: dict[str, AlertState],
    alert: AlertState | None,
    target: int,
    value: float | None,
    ref: MachineRef,
    now: datetime,
    events: list[AlertEvent],
) -> None:
    """Turn one observation into a signal and apply TRANSITIONS to it."""
    current: State = "ok" if alert is None else alert.state
    signal: Signal
    if target == 0:
        signal = "clear"
    elif current == "firing":
        assert alert is not None
        if target > alert.level:
            signal = "escalate"
        elif target < alert.level:
            signal = "deescalate"
        elif (
            check.repeat is not None
            and alert.last_event_at is not None
            and (now - alert.last_event_at).total_seconds() >= check.repeat
        ):
            signal = "repeat_due"
        else:
            signal = "same"
    elif check.for_seconds <= 0:
        signal = "held"
    elif current == "pending":
        assert alert is not None and alert.started_at is not None
        held = (now - alert.started_at).total_seconds() >= check.for_seconds
        signal = "held" if held else "breach"
    else:
        signal = "breach"
    if current == "ok" and signal == "clear":
        return
    move = transition(current, signal)
    if alert is None:
        alert = _new_alert(check.rule)
        alerts[check.rule.id] = alert
    previous_level = alert.level
    if current == "ok":
        alert.started_at = now
    alert.value = value
    alert.level = target
    alert.threshold = check.threshold(target or previous_level, recovering=target == 0)
    alert.state = move.to
    if move.event is not None:
        assert move.event_to_state is not None
        events.append(
            _event(
                alert,
                ref=ref,
                kind=move.event,
                from_state=current,
                to_state=move.event_to_state,
                level=target,
                now=now,
            )
        )
        alert.last_event_at = now
    if move.to == "ok":
        alert.started_at = None
        alert.last_event_at = None
        if not alert.window:
            del alerts[check.rule.id]


def _new_alert(rule: Rule) -> AlertState:
    return AlertState(rule_id=rule.id, rule_name=rule.name, metric=rule.metric)


def _windowed(check: _Check, alert: AlertState, value: float, now_ts: float) -> float:
    window = alert.window
    window.append((now_ts, value))
    horizon = now_ts - check.window
    while window and window[0][0] <= horizon:
        window.pop(0)
    if check.window_max:
        return max(v for _, v in window)
    return sum(v for _, v in window) / len(window)


def _observe(
    plan: _Plan,
    *,
    state: EngineState,
    machine: MachineState,
    sample: HostSample | ContainerSample | None,
    now: datetime,
    now_ts: float,
    events: list[AlertEvent],
) -> None:
    ref = plan.ref
    alerts = state.alerts.get(ref.key)
    for check in plan.checks:
        code = check.code
        alert = alerts.get(check.rule.id) if alerts else None
        value: float | None
        if code == _THRESHOLD:
            if sample is None:
                continue
            assert check.get is not None
            value = check.get(sample)
            if value is None:
                continue  # no data: the alert keeps its state and timers
            value = float(value)
            if check.window > 0:
                if alert is None:
                    if alerts is None:
                        alerts = state.alerts.setdefault(ref.key, {})
                    alert = _new_alert(check.rule)
                    alerts[check.rule.id] = alert
                value = _windowed(check, alert, value, now_ts)
            target = check.target(value, alert.level if alert is not None else 0)
            if target == 0 and (alert is None or alert.state == "ok"):
                continue
        elif code == _SILENT:
            if alert is None or alert.state == "ok":
                continue
            target, value = 0, 0.0
        elif not isinstance(sample, ContainerSample):
            continue
        elif code == _STOPPED:
            stopped = sample.state in STOPPED_STATES
            target = check.level if stopped else 0
            value = None if sample.exit_code is None else float(sample.exit_code)
        elif code == _UNHEALTHY:
            target = check.level if sample.health == "unhealthy" else 0
            value = None
        else:
            hold = check.rule.hold_seconds or DEFAULT_HOLD_SECONDS
            last = machine.last_restart_at
            recent = last is not None and (now - last).total_seconds() < hold
            target = check.level if recent else 0
            count = sample.restart_count
            value = None if count is None else float(count)
        if target == 0 and alert is None:
            continue
        if alerts is None:
            alerts = state.alerts.setdefault(ref.key, {})
        _step(
            check,
            alerts=alerts,
            alert=alert,
            target=target,
            value=value,
            ref=ref,
            now=now,
            events=events,
        )
    if alerts is not None and not alerts:
        del state.alerts[ref.key]


def _seen(
    state: EngineState, ref: MachineRef, now: datetime, sample: ContainerSample | None
) -> MachineState:
    machine = state.machines.get(ref.key)
    if machine is None:
        machine = MachineState(ref=ref, last_seen=now)
        state.machines[ref.key] = machine
    else:
        machine.ref = ref
        machine.last_seen = now
    if sample is not None:
        count, known = sample.restart_count, machine.restart_count
        if machine.container_id is not None and (
            sample.id != machine.container_id
            or (count is not None and known is not None and count > known)
        ):
            machine.last_restart_at = now
        machine.container_id = sample.id
        if count is not None:  # an absent count is no news: the last known one stays
            machine.restart_count = count
    return machine


def _host_ref(state: EngineState, batch: Batch) -> MachineRef:
    known = state.machines.get(batch.host_id)
    if known is not None and known.ref.hostname == batch.hostname:
        return known.ref
    return MachineRef(
        key=batch.host_id,
        kind="host",
        host_id=batch.host_id,
        hostname=batch.hostname,
        name=batch.hostname,
    )


def _container_ref(state: EngineState, batch: Batch, sample: ContainerSample) -> MachineRef:
    key = container_key(batch.host_id, sample.name)
    known = state.machines.get(key)
    if known is not None:
        ref = known.ref
        if ref.hostname == batch.hostname and ref.labels == sample.labels:
            return ref
    return MachineRef(
        key=key,
        kind="container",
        host_id=batch.host_id,
        hostname=batch.hostname,
        name=sample.name,
        labels=dict(sample.labels),
    )


def evaluate_batch(
    rules: Sequence[Rule], state: EngineState, batch: Batch, now: datetime
) -> tuple[EngineState, list[AlertEvent]]:
    """Run every applicable rule on every sample of one batch.

    Containers of this host that are missing from the batch were removed: they are
    forgotten, and their alerts resolve (unless the collector could not list containers,
    ``agent.container_source == "none"``).
    """
    events = _sync_rules(rules, state, now)
    now_ts = now.timestamp()
    # any batch proves the host's collector is alive, even one without a host sample
    ref = _host_ref(state, batch)
    machine = _seen(state, ref, now, None)
    plan = _plan_for(rules, state, ref)
    _observe(
        plan, state=state, machine=machine, sample=batch.host, now=now, now_ts=now_ts, events=events
    )
    present: set[str] = set()
    for sample in batch.containers:
        ref = _container_ref(state, batch, sample)
        present.add(ref.key)
        machine = _seen(state, ref, now, sample)
        plan = _plan_for(rules, state, ref)
        _observe(
            plan, state=state, machine=machine, sample=sample, now=now, now_ts=now_ts, events=events
        )
    known = state.containers_by_host.get(batch.host_id)
    if batch.agent.container_source == "none":
        present |= known or set()
    elif known:
        for key in known - present:
            machine = state.machines.pop(key)
            state.plans.pop(key, None)
            for alert in state.alerts.pop(key, {}).values():
                _gone(alert, machine.ref, now, events)
    state.containers_by_host[batch.host_id] = present
    return state, events


def check_silence(
    rules: Sequence[Rule], state: EngineState, now: datetime
) -> tuple[EngineState, list[AlertEvent]]:
    """Fire ``silent`` rules for machines not seen for their ``silent_seconds``.

    Call it periodically (e.g. every second); a later batch from the machine resolves it.
    """
    events = _sync_rules(rules, state, now)
    for key, machine in state.machines.items():
        plan = _plan_for(rules, state, machine.ref)
        alerts: dict[str, AlertState] | None = None
        for check in plan.checks:
            if check.code != _SILENT:
                continue
            quiet = (now - machine.last_seen).total_seconds()
            limit = check.rule.silent_seconds or 0.0
            alerts = state.alerts.setdefault(key, {})
            alert = alerts.get(check.rule.id)
            if quiet < limit and alert is None:
                continue
            target = check.level if quiet >= limit else 0
            _step(
                check,
                alerts=alerts,
                alert=alert,
                target=target,
                value=quiet,
                ref=machine.ref,
                now=now,
                events=events,
            )
        if alerts is not None and not alerts:
            del state.alerts[key]
    return state, events


def active_alerts(state: EngineState) -> list[ActiveAlert]:
    """Pending and firing alerts, most severe first, then oldest first."""
    out: list[ActiveAlert] = []
    for key, by_rule in state.alerts.items():
        machine = state.machines.get(key)
        if machine is None:
            continue
        ref = machine.ref
        for alert in by_rule.values():
            if alert.state == "ok":
                continue
            out.append(
                ActiveAlert(
                    fingerprint=fingerprint(alert.rule_id, key),
                    rule_id=alert.rule_id,
                    rule_name=alert.rule_name,
                    machine_key=key,
                    machine_kind=ref.kind,
                    machine_name=ref.name,
                    host_id=ref.host_id,
                    metric=alert.metric,
                    state=alert.state,
                    level=LEVELS[alert.level],
                    since=alert.started_at,
                    value=alert.value,
                    threshold=alert.threshold,
                )
            )
    out.sort(
        key=lambda a: (
            -LEVELS.index(a.level),
            a.since.timestamp() if a.since is not None else 0.0,
            a.fingerprint,
        )
    )
    return out
