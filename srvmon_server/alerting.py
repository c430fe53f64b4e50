"""The alerting service: the srvmon_core engine run per batch and per tick, with rules,
silences, history and saved state kept in storage.

Every method that touches storage or the engine state runs on the server's single DB
thread (``DbThread``), so the state is never shared between threads; the IOLoop reads only
the snapshots published after each step (``active``, ``firing_levels``). Values stay typed:
rules are ``Rule``, silences ``Silence``, events ``AlertEvent`` (created ``silenced`` by the
engine when a silence matches).

The engine state is saved per machine: each step writes its events and the machines it
changed in one transaction (O(changed), not O(machines)); ``save_periodic`` keeps pending
timers, windows and new machines recent. ``adopt_hosts`` / ``release_hosts`` load and
hand over the machines of some hosts, for a process that evaluates only part of the fleet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from srvmon_core.alert_state import MachineSnapshot, StateChanges
from srvmon_core.defaults import DEFAULT_RULES
from srvmon_core.engine import (
    ActiveAlert,
    AlertEvent,
    EngineState,
    MachineRef,
    active_alerts,
    check_silence,
    evaluate_view,
)
from srvmon_core.errors import DecodeError
from srvmon_core.rules import Rule, effective_rules
from srvmon_core.silences import Silence
from srvmon_core.silencing import apply_silences, next_boundary
from srvmon_core.view import BatchView
from srvmon_server.storage import MachineRecord, Storage

log = logging.getLogger(__name__)
SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}
PERIODIC_SAVE_CHUNK = 2000
"""Machines per periodic-save transaction (a cold start saves every machine once)."""


class Alerting:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.rules: tuple[Rule, ...] = ()
        """A tuple: the engine recognises an unchanged rule set by its identity."""
        self.silences: list[Silence] = []
        self.state = EngineState()
        self._levels: dict[str, str] = {}
        self._active: list[ActiveAlert] = []
        self._stale = False
        """A batch may have moved an active alert's value since the last snapshot."""
        self._boundary: datetime | None = None
        """When the next silence starts or ends (``on_tick`` applies silences then)."""

    # --- loading (DB thread) --------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Seed the default rules on first start, then load rules, every saved machine's
        state and the silences."""
        self._storage.rules.seed(DEFAULT_RULES)
        self.reload_rules()
        self.state = EngineState()
        self._restore(self._storage.alert_states.load(), now)
        self.silences = self._storage.silences.all(now=now)
        self._boundary = now  # the first tick applies them: a silence may have ended
        self._snapshot()

    def adopt_hosts(self, host_ids: Iterable[str], now: datetime) -> int:
        """Load the saved machines of these hosts (this process now evaluates them, e.g. a
        Kafka partition was assigned); return how many. Pending timers go on from their
        saved start."""
        restored = self._restore(self._storage.alert_states.load(host_ids), now)
        self._snapshot()
        return restored

    def release_hosts(self, host_ids: Iterable[str]) -> None:
        """Save and forget the machines of these hosts (another process takes them over)."""
        self._save(self.state.release_hosts(host_ids))
        self._snapshot()

    def _restore(self, snapshots: Iterable[MachineSnapshot], now: datetime) -> int:
        restored = 0
        for snapshot in snapshots:
            try:
                self.state.restore(snapshot, now)
            except DecodeError as exc:
                log.error(
                    "saved alert state of %s is unusable, starting it fresh: %s", snapshot.key, exc
                )
                continue
            restored += 1
        return restored

    def forget_machines(self, keys: Iterable[str]) -> None:
        """These machines were deleted: drop their engine state and alerts (no events, no
        notifications) and their saved rows."""
        self._save(self.state.forget(keys))
        self._snapshot()

    def save_periodic(self, limit: int | None = PERIODIC_SAVE_CHUNK) -> bool:
        """Save up to ``limit`` machines with pending timers, windows, or never saved, seen
        since their last save; True while more wait (call again: other DB work can run in
        between)."""
        self._save(self.state.take_periodic(limit))
        return self.state.periodic_due

    def _save(self, changes: StateChanges, events: list[AlertEvent] | None = None) -> None:
        try:
            self._storage.alert_states.save(changes, events or ())
        except BaseException:
            self.state.requeue(changes)  # the next write takes them again
            raise

    def reload_rules(self) -> None:
        self.rules = tuple(self._storage.rules.all())

    def reload_silences(self, now: datetime) -> list[AlertEvent]:
        """Read the silences again (one was created or expired) and apply them to the live
        alerts at once: the ``silenced`` / ``unsilenced`` events, recorded."""
        self.silences = self._storage.silences.all(now=now)
        return self._apply_silences(now)

    def _apply_silences(self, now: datetime) -> list[AlertEvent]:
        self.silences = [s for s in self.silences if s.ends_at > now]
        self._boundary = next_boundary(self.silences, now)
        self.state, events = apply_silences(self.state, self.silences, now)
        return self._record(events)

    # --- evaluation (DB thread) -----------------------------------------------------------

    def on_batch(self, view: BatchView, now: datetime) -> list[AlertEvent]:
        self.state, events = evaluate_view(self.rules, self.state, view, now, self.silences)
        if self._active:
            self._stale = True
        return self._record(events)

    def on_tick(self, now: datetime) -> list[AlertEvent]:
        """The silent-machine check; silences that started or ended since the last tick;
        a fresh snapshot of the active alerts' values (at most one per tick)."""
        self.state, events = check_silence(self.rules, self.state, now, self.silences)
        recorded = self._record(events)
        if self._boundary is not None and now >= self._boundary:
            recorded = [*recorded, *self._apply_silences(now)]
        if self._stale:
            self._snapshot()
        return recorded

    def _record(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """Events and the machines they changed, in one transaction."""
        changes = self.state.take_changes()
        if events or not changes.empty:
            self._save(changes, events)
        if events:
            self._snapshot()
        return events

    def _snapshot(self) -> None:
        active = active_alerts(self.state)
        levels: dict[str, str] = {}
        for alert in active:
            if alert.state != "firing" or alert.silenced:
                continue
            key = alert.machine_key
            if SEVERITY_ORDER.get(alert.level, 0) > SEVERITY_ORDER.get(levels.get(key, "ok"), 0):
                levels[key] = alert.level
        self._active = active
        self._levels = levels
        self._stale = False

    # --- reads (any thread: immutable snapshots) -------------------------------------------

    def active(self) -> list[ActiveAlert]:
        """Pending and firing alerts, most severe first."""
        return list(self._active)

    def firing_events(self, now: datetime) -> list[AlertEvent]:
        """The firing alerts as ``firing`` events at ``now``, ``silenced`` as the alert is
        (its flag follows the silences at once), for announcing the active set again."""
        events = []
        for alert in self._active:
            if alert.state != "firing":
                continue
            events.append(
                AlertEvent(
                    fingerprint=alert.fingerprint,
                    kind="firing",
                    rule_id=alert.rule_id,
                    rule_name=alert.rule_name,
                    machine_key=alert.machine_key,
                    machine_kind=alert.machine_kind,
                    machine_name=alert.machine_name,
                    host_id=alert.host_id,
                    hostname=alert.hostname,
                    metric=alert.metric,
                    level=alert.level,
                    from_state="pending",
                    to_state="firing",
                    value=alert.value,
                    threshold=alert.threshold,
                    started_at=alert.since,
                    at=now,
                    silenced=alert.silenced,
                )
            )
        return events

    def firing_levels(self) -> dict[str, str]:
        """Worst level (``warning``/``critical``) of the firing alerts that are not silenced,
        per machine key: a silenced alert colours nothing."""
        return self._levels

    def rules_for(self, record: MachineRecord) -> list[Rule]:
        """The rules that apply to one machine, after precedence."""
        ref = MachineRef(
            key=record.key,
            kind=record.kind,
            host_id=record.host_id,
            hostname=record.hostname,
            name=record.name,
            labels=dict(record.labels or {}),
        )
        rules: Sequence[Rule] = self.rules
        return effective_rules(rules, ref)
