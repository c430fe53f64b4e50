"""The alert engine: a pure state machine that eats batches and returns alert events.

``evaluate_view(rules, state, view, now)`` (or ``evaluate_batch`` for a batch not yet
viewed) and ``check_silence(rules, state, now)`` never read a clock and never do I/O.
Threshold rules read the machine view's flat metrics (:mod:`srvmon_core.view`), so a metric
the sample does not carry (absent, or listed in ``HostSample.not_collected``) is never
evaluated: the alert keeps its state and timers, as with any missing figure.

For speed both MUTATE ``state`` in place and return the same object; treat the returned
state as the current one. State moves only through
:data:`srvmon_core.transitions.TRANSITIONS`; this module computes the signal.

An *alert* is one rule on one machine, identified by ``fingerprint(rule id, machine key)``.
Events are emitted only on transitions (and ``repeat`` events when a rule asks for them).
The value and state classes and their (de)serialization live in :mod:`srvmon_core.alert_state`
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from srvmon_core.alert_state import (
    CONVERTER,
    LEVELS,
    STATE_VERSION,
    ActiveAlert,
    AlertEvent,
    AlertState,
    EngineState,
    MachineRef,
    MachineSnapshot,
    MachineState,
    StateChanges,
    fingerprint,
)
from srvmon_core.checks import (
    SILENT,
    STOPPED,
    THRESHOLD,
    UNHEALTHY,
    Check,
    Plan,
    plan_for,
)
from srvmon_core.rules import DEFAULT_HOLD_SECONDS, Rule
from srvmon_core.schema import Batch, ContainerSample
from srvmon_core.silences import Silence
from srvmon_core.silencing import mark_silenced
from srvmon_core.transitions import EventKind, EventState, Signal, State, transition
from srvmon_core.view import BatchView, MachineView, batch_view

STOPPED_STATES = frozenset({"exited", "dead"})

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
    "MachineSnapshot",
    "MachineState",
    "StateChanges",
    "active_alerts",
    "check_silence",
    "evaluate_batch",
    "evaluate_view",
    "fingerprint",
]


# --- the engine ----------------------------------------------------------------------------


def _sync_rules(rules: Sequence[Rule], state: EngineState, now: datetime) -> list[AlertEvent]:
    """Drop cached plans when the rule set changed; resolve alerts of rules that went away."""
    seen = state.rules_seen
    if rules is seen:  # the same tuple again: nothing can have changed
        return []
    if len(seen) == len(rules) and all(a is b for a, b in zip(seen, rules, strict=True)):
        if isinstance(rules, tuple):
            state.rules_seen = rules
        return []
    # strong references: ids in the caches stay unique
    state.rules_seen = rules if isinstance(rules, tuple) else tuple(rules)
    state.plans.clear()
    state.compiled.clear()
    events: list[AlertEvent] = []
    for key, by_rule in list(state.alerts.items()):
        machine = state.machines.get(key)
        if machine is None:
            del state.alerts[key]
            continue
        plan = plan_for(rules, state, machine.ref)
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
        hostname=ref.hostname,
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
    check: Check,
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


def _windowed(check: Check, alert: AlertState, value: float, now_ts: float) -> float:
    window = alert.window
    window.append((now_ts, value))
    horizon = now_ts - check.window
    while window and window[0][0] <= horizon:
        window.pop(0)
    if check.window_max:
        return max(v for _, v in window)
    return sum(v for _, v in window) / len(window)


def _observe(
    plan: Plan,
    *,
    state: EngineState,
    machine: MachineState,
    view: MachineView | None,
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
        if code == THRESHOLD:
            if view is None:
                continue
            value = view.metrics.get(check.metric)
            if value is None:
                continue  # not carried: the alert keeps its state and timers
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
        elif code == SILENT:
            if alert is None or alert.state == "ok":
                continue
            target, value = 0, 0.0
        elif view is None or not isinstance(view.sample, ContainerSample):
            continue
        elif code == STOPPED:
            stopped = view.state in STOPPED_STATES
            target = check.level if stopped else 0
            exit_code = view.sample.exit_code
            value = None if exit_code is None else float(exit_code)
        elif code == UNHEALTHY:
            target = check.level if view.health == "unhealthy" else 0
            value = None
        else:
            hold = check.rule.hold_seconds or DEFAULT_HOLD_SECONDS
            last = machine.last_restart_at
            recent = last is not None and (now - last).total_seconds() < hold
            target = check.level if recent else 0
            count = view.restart_count
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
    state: EngineState, ref: MachineRef, now: datetime, container: MachineView | None
) -> MachineState:
    """Mark a machine seen at ``now``; for a container, note a restart.

    A restart is a new Docker id for the same container key (even when the source reports
    no restart counts), or a restart count higher than the last known one (both known). An
    absent count (``None``: the legacy Java collector) is no news: the last known one stays.
    """
    machine = state.machines.get(ref.key)
    if machine is None:
        machine = MachineState(ref=ref, last_seen=now)
        state.machines[ref.key] = machine
    else:
        machine.ref = ref
        machine.last_seen = now
    state.touched.add(ref.key)
    if container is not None:
        sample = container.sample
        assert isinstance(sample, ContainerSample)
        docker_id = sample.id
        count, known = container.restart_count, machine.restart_count
        if machine.container_id is not None:
            new_id = docker_id != machine.container_id
            if new_id or (count is not None and count != known):
                state.changed.add(ref.key)  # new restart memory: save it with the next write
            if new_id or (count is not None and known is not None and count > known):
                machine.last_restart_at = now
        machine.container_id = docker_id
        if count is not None:
            machine.restart_count = count
    return machine


def _forget(state: EngineState, key: str) -> None:
    """A removed machine: its saved row, if any, goes with the next write."""
    state.touched.discard(key)
    if key in state.persisted:
        state.persisted.discard(key)
        state.removed.add(key)


def _mark_changed(state: EngineState, events: list[AlertEvent]) -> None:
    """Every transition changes its machine's saved state (removed ones are skipped when
    the changes are taken)."""
    for event in events:
        state.changed.add(event.machine_key)


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


def _container_ref(state: EngineState, view: MachineView) -> MachineRef:
    known = state.machines.get(view.key)
    if known is not None:
        ref = known.ref
        if ref.hostname == view.hostname and ref.labels == view.labels:
            return ref
    return MachineRef(
        key=view.key,
        kind="container",
        host_id=view.host_id,
        hostname=view.hostname,
        name=view.name,
        labels=dict(view.labels),
    )


def evaluate_view(
    rules: Sequence[Rule],
    state: EngineState,
    view: BatchView,
    now: datetime,
    silences: Sequence[Silence] = (),
) -> tuple[EngineState, list[AlertEvent]]:
    """Run every applicable rule on every machine of one viewed batch.

    Each event is created ``silenced`` when one of ``silences`` is active at ``now`` and
    matches it.

    Containers of this host that are missing from the batch were removed: they are
    forgotten, and their alerts resolve (unless the collector could not list containers,
    ``agent.container_source == "none"``).
    """
    events = _sync_rules(rules, state, now)
    now_ts = now.timestamp()
    batch = view.batch
    # any batch proves the host's collector is alive, even one without a host sample
    ref = _host_ref(state, batch)
    machine = _seen(state, ref, now, None)
    plan = plan_for(rules, state, ref)
    _observe(
        plan, state=state, machine=machine, view=view.host, now=now, now_ts=now_ts, events=events
    )
    present: set[str] = set()
    for container in view.containers:
        ref = _container_ref(state, container)
        present.add(ref.key)
        machine = _seen(state, ref, now, container)
        plan = plan_for(rules, state, ref)
        _observe(
            plan,
            state=state,
            machine=machine,
            view=container,
            now=now,
            now_ts=now_ts,
            events=events,
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
            _forget(state, key)
    state.containers_by_host[batch.host_id] = present
    _mark_changed(state, events)
    return state, mark_silenced(state, events, silences, now)


def evaluate_batch(
    rules: Sequence[Rule],
    state: EngineState,
    batch: Batch,
    now: datetime,
    silences: Sequence[Silence] = (),
) -> tuple[EngineState, list[AlertEvent]]:
    """:func:`evaluate_view` of ``batch_view(batch)``, for a batch not yet viewed."""
    return evaluate_view(rules, state, batch_view(batch), now, silences)


def check_silence(
    rules: Sequence[Rule],
    state: EngineState,
    now: datetime,
    silences: Sequence[Silence] = (),
    *,
    grace_seconds: float = 0.0,
) -> tuple[EngineState, list[AlertEvent]]:
    """Fire ``silent`` rules for machines not seen for their ``silent_seconds`` plus
    ``grace_seconds``.

    Call it periodically (e.g. every second); a later batch from the machine resolves it.
    ``silences`` mark events as :func:`evaluate_view` does. ``grace_seconds`` is how far
    the caller's own processing is behind (a server passes the age of the oldest ingest
    it holds unfinished): batches it holds and has not read yet are not a machine's
    silence.
    """
    events = _sync_rules(rules, state, now)
    held = state.alerts
    plans = state.plans
    cutoffs: dict[int, datetime] = {}  # per check: a machine last seen before it is quiet
    for key, machine in state.machines.items():
        plan = plans.get(key)
        if plan is None or plan.ref is not machine.ref:
            plan = plan_for(rules, state, machine.ref)
        checks = plan.silent
        if not checks:
            continue
        alerts = held.get(key)
        if alerts is None:  # the common case: heard from lately, and no alert to resolve
            last_seen = machine.last_seen
            for check in checks:
                cutoff = cutoffs.get(id(check))
                if cutoff is None:
                    limit = (check.rule.silent_seconds or 0.0) + grace_seconds
                    cutoff = cutoffs[id(check)] = now - timedelta(seconds=limit)
                if last_seen <= cutoff:
                    break
            else:
                continue
        quiet = (now - machine.last_seen).total_seconds()
        for check in checks:
            limit = (check.rule.silent_seconds or 0.0) + grace_seconds
            alert = alerts.get(check.rule.id) if alerts is not None else None
            if quiet < limit and alert is None:
                continue
            if alerts is None:
                alerts = held[key] = {}
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
            del held[key]
    _mark_changed(state, events)
    return state, mark_silenced(state, events, silences, now)


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
                    hostname=ref.hostname,
                    metric=alert.metric,
                    state=alert.state,
                    level=LEVELS[alert.level],
                    since=alert.started_at,
                    value=alert.value,
                    threshold=alert.threshold,
                    silenced=alert.silenced,
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
