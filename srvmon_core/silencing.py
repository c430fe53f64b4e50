"""Silences taking effect on live alerts, at once.

Each pending or firing alert carries a ``silenced`` flag (:class:`AlertState`): whether an
active silence matches it. The flag changes in two ways:

- with an event: the engine creates every event ``silenced`` when an active silence
  matches it (:func:`mark_silenced`), and the alert keeps that flag;
- without one: a silence is created, expired, starts or ends while the alert goes on.
  :func:`apply_silences` then emits a ``silenced`` or ``unsilenced`` event for each alert
  whose flag flips. No state moves (``from_state`` = ``to_state``).

An ``unsilenced`` event of a firing alert is not silenced, so it is notified as ``firing``
again: Alertmanager's re-notification when a silence ends on an alert that still fires.
A ``silenced`` event is itself silenced: recorded and published, never notified.

Call :func:`apply_silences` whenever the silences change, and when the clock passes
:func:`next_boundary` (a silence starting or ending by itself). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from attrs import evolve

from srvmon_core.alert_state import (
    LEVELS,
    AlertEvent,
    AlertState,
    EngineState,
    MachineRef,
    fingerprint,
)
from srvmon_core.silences import Silence
from srvmon_core.transitions import EventKind


def mark_silenced(
    state: EngineState, events: list[AlertEvent], silences: Sequence[Silence], now: datetime
) -> list[AlertEvent]:
    """The engine's events as they leave it: ``silenced`` when an active silence matches;
    each alert that goes on keeps the flag of its latest event."""
    if not events:
        return events
    out = []
    alerts = state.alerts
    for event in events:
        silenced = bool(silences) and any(s.matches(event, now) for s in silences)
        alert = alerts.get(event.machine_key, {}).get(event.rule_id)
        if alert is not None:
            alert.silenced = silenced and alert.state != "ok"
        out.append(evolve(event, silenced=True) if silenced else event)
    return out


def _probe(alert: AlertState, ref: MachineRef, now: datetime) -> AlertEvent:
    """An event describing the alert as it stands (kind set by the caller)."""
    assert alert.state != "ok"
    return AlertEvent(
        fingerprint=fingerprint(alert.rule_id, ref.key),
        kind="silenced",
        rule_id=alert.rule_id,
        rule_name=alert.rule_name,
        machine_key=ref.key,
        machine_kind=ref.kind,
        machine_name=ref.name,
        host_id=ref.host_id,
        hostname=ref.hostname,
        metric=alert.metric,
        level=LEVELS[alert.level],
        from_state=alert.state,
        to_state=alert.state,
        value=alert.value,
        threshold=alert.threshold,
        started_at=alert.started_at,
        at=now,
    )


def apply_silences(
    state: EngineState, silences: Sequence[Silence], now: datetime
) -> tuple[EngineState, list[AlertEvent]]:
    """Bring every pending and firing alert's ``silenced`` flag in line with ``silences``
    at ``now``; a ``silenced`` / ``unsilenced`` event for each flip. Mutates ``state`` (the
    machines that flipped are marked changed, to be saved) and returns it."""
    events: list[AlertEvent] = []
    for key, by_rule in state.alerts.items():
        machine = state.machines.get(key)
        if machine is None:
            continue
        for alert in by_rule.values():
            if alert.state == "ok":
                continue
            probe = _probe(alert, machine.ref, now)
            silenced = any(s.matches(probe, now) for s in silences)
            if silenced == alert.silenced:
                continue
            alert.silenced = silenced
            kind: EventKind = "silenced" if silenced else "unsilenced"
            events.append(evolve(probe, kind=kind, silenced=silenced))
            state.changed.add(key)
    return state, events


def next_boundary(silences: Sequence[Silence], now: datetime) -> datetime | None:
    """The first time after ``now`` at which one of ``silences`` starts or ends."""
    times = [t for s in silences for t in (s.starts_at, s.ends_at) if t > now]
    return min(times, default=None)
