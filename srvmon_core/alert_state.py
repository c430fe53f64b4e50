"""Alert engine values and state, and their (de)serialization.

Everything :mod:`srvmon_core.engine` reads and writes lives here: the machines it watches
(:class:`MachineRef`), the events it emits (:class:`AlertEvent`), the alerts it reports
(:class:`ActiveAlert`), what it remembers between batches (:class:`MachineState`,
:class:`AlertState`, :class:`EngineState` with ``to_dict``/``from_dict``), the alert
:func:`fingerprint`, and the engine's own cattrs converter for events and saved state.
The evaluation logic stays in :mod:`srvmon_core.engine`, which re-exports these names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import cattrs
from attrs import define, field, frozen

from srvmon_core.errors import DecodeError
from srvmon_core.transitions import EventKind, EventState, State

if TYPE_CHECKING:
    from srvmon_core.checks import Check, Plan
    from srvmon_core.rules import Rule

LEVELS = ("none", "warning", "critical")
"""Level names by number: 0 none, 1 warning, 2 critical."""
STATE_VERSION = 1
"""Version of the whole-state document (``EngineState.to_dict``)."""
MACHINE_STATE_VERSION = 2
"""Version of one machine's saved document (``MachineSnapshot.document``)."""


def _make_converter() -> cattrs.Converter:
    """The converter for events and saved state (its own, so the wire codec can evolve)."""
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)

    def to_iso(value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def from_iso(value: Any, _type: type) -> datetime:
        if not isinstance(value, str):
            raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
        parsed = datetime.fromisoformat(value)
        if parsed.utcoffset() is None:
            raise ValueError("timestamp needs a time zone, e.g. a trailing Z")
        return parsed.astimezone(UTC)

    def strict_str(value: Any, _type: type) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        return value

    converter.register_unstructure_hook(datetime, to_iso)
    converter.register_structure_hook(datetime, from_iso)
    converter.register_structure_hook(str, strict_str)
    return converter


CONVERTER = _make_converter()


@frozen(kw_only=True)
class MachineRef:
    """One monitored machine: a host, or a container on a host."""

    key: str
    kind: Literal["host", "container"]
    host_id: str
    hostname: str
    name: str
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class AlertEvent:
    """One alert transition. docs/alerts.md describes every field."""

    fingerprint: str
    kind: EventKind
    rule_id: str
    rule_name: str
    machine_key: str
    machine_kind: str
    machine_name: str
    host_id: str
    hostname: str = ""
    """The host's name (for a container, its host's): ``vm`` in ``vm/db``. Empty in events
    stored before srvmon kept it."""
    metric: str | None
    level: str
    from_state: State
    to_state: EventState
    value: float | None
    threshold: float | None
    started_at: datetime | None
    at: datetime
    silenced: bool = False
    """An active silence matched the event when it was created: it is recorded and
    published, but not notified. ``silenced`` / ``unsilenced`` events mark a silence
    starting or ending on a live alert (:mod:`srvmon_core.silencing`)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (timestamps as ISO 8601 with Z)."""
        data: dict[str, Any] = CONVERTER.unstructure(self)
        return data


@frozen(kw_only=True)
class ActiveAlert:
    """A pending or firing alert, for the dashboard and ``/api/v1/alerts``."""

    fingerprint: str
    rule_id: str
    rule_name: str
    machine_key: str
    machine_kind: str
    machine_name: str
    host_id: str
    hostname: str
    metric: str | None
    state: State
    level: str
    since: datetime | None
    value: float | None
    threshold: float | None
    silenced: bool
    """An active silence matches the alert now: listed, but it asks for no attention."""


@define
class MachineState:
    """What the engine remembers about one machine."""

    ref: MachineRef
    last_seen: datetime
    container_id: str | None = None
    restart_count: int | None = None
    last_restart_at: datetime | None = None


@define
class AlertState:
    """One rule on one machine. ``ok`` entries are kept only to hold a metric window."""

    rule_id: str
    rule_name: str
    metric: str | None
    state: State = "ok"
    level: int = 0
    started_at: datetime | None = None
    last_event_at: datetime | None = None
    value: float | None = None
    threshold: float | None = None
    window: list[tuple[float, float]] = field(factory=list)
    silenced: bool = False
    """Whether an active silence matched the alert at its latest event."""


def fingerprint(rule_id: str, machine_key: str) -> str:
    """A stable id of one alert: the same rule on the same machine, across restarts."""
    return hashlib.sha256(f"{rule_id}\x00{machine_key}".encode()).hexdigest()[:16]


@frozen(kw_only=True)
class MachineSnapshot:
    """One machine's saved alert state: its ``MachineState`` and its alerts (timers,
    windows, restart memory), as a JSON-ready ``document``. Stored per machine, so a change
    writes only that machine, and a process can load only the machines it evaluates."""

    key: str
    host_id: str
    document: dict[str, Any]


@frozen(kw_only=True)
class StateChanges:
    """What to write: machines to save (upsert) and machine keys to delete."""

    saved: tuple[MachineSnapshot, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.saved and not self.removed


@define
class EngineState:
    """Everything the engine remembers, per machine.

    The engine marks what it moves: ``changed`` (a transition or new restart memory: save
    with the next write), ``touched`` (seen since its last save: last seen time, windows,
    values) and ``removed`` (a container gone: delete its saved row). ``take_changes`` and
    ``take_periodic`` turn the marks into :class:`StateChanges`; ``restore`` loads saved
    machines back. ``to_dict``/``from_dict`` handle the whole state as one document.
    """

    machines: dict[str, MachineState] = field(factory=dict)
    alerts: dict[str, dict[str, AlertState]] = field(factory=dict)
    """machine key → rule id → alert."""
    plans: dict[str, Plan] = field(factory=dict, eq=False, repr=False)
    """Cache of the rules that apply to each machine; rebuilt when rules or machine change."""
    rules_seen: tuple[Rule, ...] = field(default=(), eq=False, repr=False)
    containers_by_host: dict[str, set[str]] = field(factory=dict, eq=False, repr=False)
    compiled: dict[int, Check] = field(factory=dict, eq=False, repr=False)
    """Compiled rules, keyed by rule identity; cleared with the plans."""
    changed: set[str] = field(factory=set, eq=False, repr=False)
    touched: set[str] = field(factory=set, eq=False, repr=False)
    removed: set[str] = field(factory=set, eq=False, repr=False)
    persisted: set[str] = field(factory=set, eq=False, repr=False)
    """Machine keys that have a saved row (saved or restored by this state)."""

    # --- per machine: save, restore, hand over --------------------------------------------

    def snapshot(self, key: str) -> MachineSnapshot:
        """The saved form of one machine the state knows."""
        machine = self.machines[key]
        return MachineSnapshot(
            key=key,
            host_id=machine.ref.host_id,
            document={
                "version": MACHINE_STATE_VERSION,
                "machine": _machine_document(machine),
                "alerts": [_alert_document(a) for a in self.alerts.get(key, {}).values()],
            },
        )

    def _take(self, keys: Collection[str]) -> StateChanges:
        saved = tuple(self.snapshot(k) for k in keys if k in self.machines)
        self.persisted.update(s.key for s in saved)
        self.changed.difference_update(keys)
        self.touched.difference_update(keys)
        removed = tuple(sorted(self.removed))
        self.removed = set()
        return StateChanges(saved=saved, removed=removed)

    def take_changes(self) -> StateChanges:
        """The machines that changed since the last take (each transition, new restart
        memory) and the removed ones: O(changed), for the write after each step."""
        return self._take(sorted(self.changed))

    def take_periodic(self, limit: int | None = None) -> StateChanges:
        """``take_changes`` plus every touched machine that holds live state (an alert that
        is pending or firing, a metric window) or was never saved: for the periodic save,
        so pending timers, windows and last-seen times stay recent. At most ``limit``
        machines (changed ones first); the rest stay marked for the next call."""
        due = sorted(k for k in self.touched if k in self.alerts or k not in self.persisted)
        keys = [*sorted(self.changed), *(k for k in due if k not in self.changed)]
        if limit is not None:
            keys = keys[:limit]
        return self._take(keys)

    @property
    def periodic_due(self) -> bool:
        """Whether ``take_periodic`` has anything to give."""
        return bool(self.changed or self.removed) or any(
            k in self.alerts or k not in self.persisted for k in self.touched
        )

    def requeue(self, changes: StateChanges) -> None:
        """A write of ``changes`` failed: take them again next time."""
        self.changed.update(s.key for s in changes.saved)
        self.persisted.difference_update(s.key for s in changes.saved)
        self.removed.update(changes.removed)

    def restore(self, snapshot: MachineSnapshot, now: datetime) -> None:
        """Load one saved machine (a server start, or a hand-over from another process).

        A machine with a pending or firing alert keeps its saved last-seen time (a silent
        rule's timer counts from it); any other one counts as seen at ``now`` at the
        latest, so a machine whose last sample was not saved never fires a false ``silent``
        alert. Raises DecodeError with the field path on junk.
        """
        data = snapshot.document
        if not isinstance(data, dict) or data.get("version") != MACHINE_STATE_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise DecodeError(f"unsupported machine state version {version!r}", "$.version")
        machine = _structure(data.get("machine"), MachineState, "$.machine")
        alerts: dict[str, AlertState] = {}
        for i, raw in enumerate(_list(data, "alerts")):
            alert = _structure(raw, AlertState, f"$.alerts[{i}]")
            if alert.level not in (0, 1, 2):
                raise DecodeError("must be 0, 1 or 2", f"$.alerts[{i}].level")
            alerts[alert.rule_id] = alert
        if not any(a.state != "ok" for a in alerts.values()):
            machine.last_seen = max(machine.last_seen, now)
        key = machine.ref.key
        self.machines[key] = machine
        self.plans.pop(key, None)
        if alerts:
            self.alerts[key] = alerts
        else:
            self.alerts.pop(key, None)
        if machine.ref.kind == "container":
            self.containers_by_host.setdefault(machine.ref.host_id, set()).add(key)
        self.persisted.add(key)

    def release_hosts(self, host_ids: Iterable[str]) -> StateChanges:
        """Forget every machine of these hosts (another process takes them over) and return
        what to save first, so the other process resumes their timers. No events."""
        hosts = set(host_ids)
        keys = [k for k, m in self.machines.items() if m.ref.host_id in hosts]
        final = {k for k in keys if k in self.changed or k in self.touched}
        changes = self._take(sorted(final))
        for key in keys:
            del self.machines[key]
            self.alerts.pop(key, None)
            self.plans.pop(key, None)
            self.persisted.discard(key)
        for host in hosts:
            self.containers_by_host.pop(host, None)
        return changes

    def forget(self, keys: Iterable[str]) -> StateChanges:
        """Drop these machines and their alerts (they were deleted): no events; the
        returned changes delete their saved rows. A machine that reports again starts
        fresh."""
        gone = set(keys)
        for key in gone:
            machine = self.machines.pop(key, None)
            self.alerts.pop(key, None)
            self.plans.pop(key, None)
            self.changed.discard(key)
            self.touched.discard(key)
            if machine is not None and machine.ref.kind == "container":
                siblings = self.containers_by_host.get(machine.ref.host_id)
                if siblings is not None:
                    siblings.discard(key)
            if key in self.persisted:
                self.persisted.discard(key)
                self.removed.add(key)
        return self._take([])

    # --- the whole state as one document ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, timers included."""
        alerts = [
            {"machine_key": key, **CONVERTER.unstructure(alert)}
            for key, by_rule in self.alerts.items()
            for alert in by_rule.values()
        ]
        return {
            "version": STATE_VERSION,
            "machines": [CONVERTER.unstructure(m) for m in self.machines.values()],
            "alerts": alerts,
        }

    @classmethod
    def from_dict(cls, data: object) -> EngineState:
        """Restore a saved state; raises DecodeError with the field path on junk."""
        if not isinstance(data, dict):
            raise DecodeError(f"expected an object, got {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise DecodeError(f"unsupported state version {data.get('version')!r}", "$.version")
        state = cls()
        for i, raw in enumerate(_list(data, "machines")):
            machine = _structure(raw, MachineState, f"$.machines[{i}]")
            state.machines[machine.ref.key] = machine
            if machine.ref.kind == "container":
                state.containers_by_host.setdefault(machine.ref.host_id, set()).add(machine.ref.key)
        for i, raw in enumerate(_list(data, "alerts")):
            path = f"$.alerts[{i}]"
            if not isinstance(raw, dict) or not isinstance(raw.get("machine_key"), str):
                raise DecodeError("expected an object with a string machine_key", path)
            alert = _structure(raw, AlertState, path)
            if alert.level not in (0, 1, 2):
                raise DecodeError("must be 0, 1 or 2", f"{path}.level")
            state.alerts.setdefault(raw["machine_key"], {})[alert.rule_id] = alert
        return state


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _machine_document(machine: MachineState) -> dict[str, Any]:
    """What ``CONVERTER.unstructure(machine)`` gives, written out (the periodic save makes
    one per live machine every few seconds)."""
    ref = machine.ref
    return {
        "ref": {
            "key": ref.key,
            "kind": ref.kind,
            "host_id": ref.host_id,
            "hostname": ref.hostname,
            "name": ref.name,
            "labels": dict(ref.labels),
        },
        "last_seen": _iso(machine.last_seen),
        "container_id": machine.container_id,
        "restart_count": machine.restart_count,
        "last_restart_at": _iso(machine.last_restart_at),
    }


def _alert_document(alert: AlertState) -> dict[str, Any]:
    """What ``CONVERTER.unstructure(alert)`` gives, written out (the window as lists)."""
    return {
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "metric": alert.metric,
        "state": alert.state,
        "level": alert.level,
        "started_at": _iso(alert.started_at),
        "last_event_at": _iso(alert.last_event_at),
        "value": alert.value,
        "threshold": alert.threshold,
        "window": [[ts, value] for ts, value in alert.window],
        "silenced": alert.silenced,
    }


def snapshots_of(state: EngineState) -> list[MachineSnapshot]:
    """Every machine of a state as a snapshot (moving a whole saved state to per-machine
    rows, e.g. in a schema migration)."""
    return [state.snapshot(key) for key in sorted(state.machines)]


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise DecodeError("expected a list", f"$.{key}")
    return value


_T = TypeVar("_T")


def structure_state(raw: object, cls: type[_T], path: str) -> _T:
    """Structure saved data with the engine's converter; DecodeError with the field path."""
    return _structure(raw, cls, path)


def _structure(raw: object, cls: type[_T], path: str) -> _T:
    try:
        return CONVERTER.structure(raw, cls)
    except cattrs.BaseValidationError as exc:
        first = (cattrs.transform_error(exc, path=path) or [str(exc)])[0]
        message, _, where = first.partition(" @ ")
        raise DecodeError(message.strip(), where.strip() or path) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DecodeError(str(exc), path) from None
