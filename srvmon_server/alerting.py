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

A server replica (``partial=True``, docs/server.md "Replica mode") evaluates only the
hosts it adopted (``owned``); batches of other hosts are stored by it but evaluated by
their owner. Its reads (``active``, ``firing_levels``) still show the whole fleet: the
machines it evaluates from its own state, every other machine from the alert events the
other replicas announce (``observe``), seeded from the saved state at start.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from attrs import evolve

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
from srvmon_core.transitions import State
from srvmon_core.view import BatchView
from srvmon_server.storage import MachineRecord, Storage

log = logging.getLogger(__name__)
SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}
PERIODIC_SAVE_CHUNK = 2000
"""Machines per periodic-save transaction (a cold start saves every machine once)."""


class Alerting:
    def __init__(self, storage: Storage, *, partial: bool = False) -> None:
        self._storage = storage
        self.rules: tuple[Rule, ...] = ()
        """A tuple: the engine recognises an unchanged rule set by its identity."""
        self.silences: list[Silence] = []
        self.state = EngineState()
        self.owned: set[str] | None = set() if partial else None
        """The hosts this process evaluates; None: every host (one server process)."""
        self._fleet: dict[str, ActiveAlert] | None = {} if partial else None
        """A replica's view of every pending and firing alert of the fleet, by fingerprint."""
        self._local_alerts: dict[str, ActiveAlert] = {}
        """This process's pending and firing alerts by fingerprint, kept up to date from
        the engine's events (rebuilt from the state after a load or a hand-over)."""
        self._levels: dict[str, str] = {}
        self._active: list[ActiveAlert] = []
        self._local: list[ActiveAlert] = []
        self._stale = False
        """A batch may have moved an active alert's value since the last snapshot."""
        self._boundary: datetime | None = None
        """When the next silence starts or ends (``on_tick`` applies silences then)."""

    # --- loading (DB thread) --------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Seed the default rules on first start, then load rules, every saved machine's
        state and the silences. A replica loads no machine (it adopts hosts as partitions
        are assigned) but seeds its view of the fleet's alerts from the saved state."""
        self._storage.rules.seed(DEFAULT_RULES)
        self.reload_rules()
        self.state = EngineState()
        saved = self._storage.alert_states.load()
        if self._fleet is None:
            self._restore(self.state, saved, now)
        else:
            everyone = EngineState()
            self._restore(everyone, saved, now)
            self._fleet = {a.fingerprint: a for a in active_alerts(everyone)}
        self.silences = self._storage.silences.all(now=now)
        self._boundary = now  # the first tick applies them: a silence may have ended
        self._snapshot()

    def adopt_hosts(self, host_ids: Iterable[str], now: datetime) -> int:
        """Load the saved machines of these hosts (this process now evaluates them, e.g. a
        Kafka partition was assigned); return how many. Pending timers go on from their
        saved start. Hosts already evaluated here are left as they are."""
        hosts = set(host_ids)
        if self.owned is not None:
            hosts -= self.owned
            self.owned |= hosts
        if not hosts:
            return 0
        restored = self._restore(self.state, self._storage.alert_states.load(hosts), now)
        self._boundary = now  # the next tick applies the silences to the adopted alerts
        self._snapshot()
        return restored

    def release_hosts(self, host_ids: Iterable[str], *, save: bool = True) -> None:
        """Save and forget the machines of these hosts (another process takes them over).
        ``save=False`` forgets without saving: the hosts were taken away (a Kafka partition
        lost), and their new owner may already have written newer state."""
        hosts = set(host_ids)
        if self._fleet is not None:  # as they are now, until their new owner says more
            self._fleet.update((a.fingerprint, a) for a in self._local if a.host_id in hosts)
        changes = self.state.release_hosts(hosts)
        if self.owned is not None:
            self.owned -= hosts
        if save:
            self._save(changes)
        self._snapshot()

    def evaluates(self, host_id: str) -> bool:
        """Whether this process evaluates the host's machines."""
        return self.owned is None or host_id in self.owned

    def _restore(
        self, state: EngineState, snapshots: Iterable[MachineSnapshot], now: datetime
    ) -> int:
        restored = 0
        for snapshot in snapshots:
            try:
                state.restore(snapshot, now)
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
        gone = set(keys)
        self._save(self.state.forget(gone))
        if self._fleet is not None:
            self._fleet = {f: a for f, a in self._fleet.items() if a.machine_key not in gone}
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

    def _record(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """Save a step's events with the machines they changed, then follow them."""
        self._save_step(events)
        if events:
            self._follow(events)
        return events

    # --- evaluation (DB thread) -----------------------------------------------------------

    def on_batch(self, view: BatchView, now: datetime) -> list[AlertEvent]:
        return self.on_batches([view], now)[0][1]

    def on_batches(
        self, views: Sequence[BatchView], now: datetime
    ) -> list[tuple[dict[str, str], list[AlertEvent]]]:
        """Evaluate the views in order; per view, the firing levels before it and its
        events. The events of all and the machines they changed are saved in one
        transaction (a batched ingest of 500 envelopes is one write, not 500)."""
        out: list[tuple[dict[str, str], list[AlertEvent]]] = []
        every: list[AlertEvent] = []
        for view in views:
            levels = self._levels
            if self.owned is not None and view.host_id not in self.owned:
                out.append((levels, []))  # another replica evaluates this host
                continue
            self.state, events = evaluate_view(self.rules, self.state, view, now, self.silences)
            if self._local_alerts:
                self._stale = True
            if events:
                self._follow(events)
                every.extend(events)
            out.append((levels, events))
        self._save_step(every)
        return out

    def on_tick(self, now: datetime, grace_seconds: float = 0.0) -> list[AlertEvent]:
        """The silent-machine check (``grace_seconds``: how far the server's own ingest is
        behind, added to every silent limit); silences that started or ended since the
        last tick; a fresh snapshot of the active alerts' values (at most one per tick)."""
        self.state, events = check_silence(
            self.rules, self.state, now, self.silences, grace_seconds=grace_seconds
        )
        self._record(events)
        if self._boundary is not None and now >= self._boundary:
            events = [*events, *self._apply_silences(now)]
        if self._stale:
            self._refresh_values()
        return events

    def _save_step(self, events: list[AlertEvent]) -> None:
        """Events and the machines they changed, in one transaction."""
        changes = self.state.take_changes()
        if events or not changes.empty:
            self._save(changes, events)

    def _follow(self, events: Iterable[AlertEvent]) -> None:
        """This process's own events: its active set, the fleet view, the snapshots."""
        local = self._local_alerts
        for event in events:
            if event.to_state in ("pending", "firing"):
                local[event.fingerprint] = active_of(event)
            else:
                local.pop(event.fingerprint, None)
        self._observe(events)
        self._publish()

    def observe(self, events: Iterable[AlertEvent]) -> None:
        """Alert events of machines another replica evaluates: the fleet view follows them
        (a replica only; one server process ignores them)."""
        if self._fleet is None:
            return
        self._observe(events)
        self._publish()

    def _observe(self, events: Iterable[AlertEvent]) -> None:
        fleet = self._fleet
        if fleet is None:
            return
        for event in events:
            if event.to_state in ("pending", "firing"):
                fleet[event.fingerprint] = active_of(event)
            else:
                fleet.pop(event.fingerprint, None)

    def _refresh_values(self) -> None:
        """The active alerts' current values from the engine state: O(active alerts)."""
        alerts = self.state.alerts
        for fp, active in list(self._local_alerts.items()):
            alert = alerts.get(active.machine_key, {}).get(active.rule_id)
            if alert is not None and alert.value != active.value:
                self._local_alerts[fp] = evolve(active, value=alert.value)
        self._stale = False
        self._publish()

    def _snapshot(self) -> None:
        """Rebuild this process's active set from the engine state (after a load or a
        hand-over, which change the state without events), then publish."""
        self._local_alerts = {a.fingerprint: a for a in active_alerts(self.state)}
        self._publish()

    def _publish(self) -> None:
        """New immutable snapshots for readers on other threads: O(active alerts), no
        pass over the machines."""
        local = list(self._local_alerts.values())
        active = local
        if self._fleet is not None:
            owned = self.owned or set()
            active = [*local, *(a for a in self._fleet.values() if a.host_id not in owned)]
        levels: dict[str, str] = {}
        for alert in active:
            if alert.state != "firing" or alert.silenced:
                continue
            key = alert.machine_key
            if SEVERITY_ORDER.get(alert.level, 0) > SEVERITY_ORDER.get(levels.get(key, "ok"), 0):
                levels[key] = alert.level
        self._local = local
        self._active = active
        self._levels = levels
        self._stale = False

    # --- reads (any thread: immutable snapshots) -------------------------------------------

    def active(self) -> list[ActiveAlert]:
        """Pending and firing alerts, most severe first, then oldest (a replica: of the
        whole fleet)."""
        return sorted(self._active, key=_severity_then_age)

    def firing_events(
        self, now: datetime, host_ids: Collection[str] | None = None
    ) -> list[AlertEvent]:
        """The firing alerts this process evaluates (of ``host_ids`` only, when given) as
        ``firing`` events at ``now``, ``silenced`` as the alert is (its flag follows the
        silences at once), for announcing the active set again after a start or a
        hand-over."""
        events = []
        for alert in self._local:
            if alert.state != "firing":
                continue
            if host_ids is not None and alert.host_id not in host_ids:
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


def _severity_then_age(alert: ActiveAlert) -> tuple[int, float, str]:
    """The order of ``active_alerts``: most severe first, then oldest, then fingerprint."""
    since = alert.since.timestamp() if alert.since is not None else 0.0
    return (-SEVERITY_ORDER.get(alert.level, 0), since, alert.fingerprint)


def active_of(event: AlertEvent) -> ActiveAlert:
    """The pending or firing alert an event leaves behind."""
    state: State = "firing" if event.to_state == "firing" else "pending"
    return ActiveAlert(
        fingerprint=event.fingerprint,
        rule_id=event.rule_id,
        rule_name=event.rule_name,
        machine_key=event.machine_key,
        machine_kind=event.machine_kind,
        machine_name=event.machine_name,
        host_id=event.host_id,
        hostname=event.hostname,
        metric=event.metric,
        state=state,
        level=event.level,
        since=event.started_at,
        value=event.value,
        threshold=event.threshold,
        silenced=event.silenced,
    )
