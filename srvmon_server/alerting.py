"""The alerting service: the srvmon_core engine run per batch and per tick, with rules,
silences, history and saved state kept in storage.

Every method that touches storage or the engine state runs on the server's single DB
thread (``DbThread``), so the state is never shared between threads; the IOLoop reads only
the snapshots published after each step (``active``, ``firing_levels``). Values stay typed:
rules are ``Rule``, silences ``Silence``, events ``AlertEvent`` (created ``silenced`` by the
engine when a silence matches).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

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
from srvmon_core.view import BatchView
from srvmon_server.storage import MachineRecord, Storage

log = logging.getLogger(__name__)
SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}


class Alerting:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.rules: list[Rule] = []
        self.silences: list[Silence] = []
        self.state = EngineState()
        self._levels: dict[str, str] = {}
        self._active: list[ActiveAlert] = []

    # --- loading (DB thread) --------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Seed the default rules on first start, then load rules, saved state, silences."""
        self._storage.rules.seed(DEFAULT_RULES)
        self.reload_rules()
        raw = self._storage.alert_states.load()
        if raw:
            try:
                self.state = EngineState.from_dict(raw)
            except DecodeError as exc:
                log.error("saved alert state is unusable, starting fresh: %s", exc)
        self.reload_silences(now)
        self._snapshot()

    def reload_rules(self) -> None:
        self.rules = self._storage.rules.all()

    def reload_silences(self, now: datetime | None = None) -> None:
        self.silences = self._storage.silences.all(now=now)

    # --- evaluation (DB thread) -----------------------------------------------------------

    def on_batch(self, view: BatchView, now: datetime) -> list[AlertEvent]:
        self.state, events = evaluate_view(self.rules, self.state, view, now, self.silences)
        return self._record(events)

    def on_tick(self, now: datetime) -> list[AlertEvent]:
        self.state, events = check_silence(self.rules, self.state, now, self.silences)
        return self._record(events)

    def _record(self, events: list[AlertEvent]) -> list[AlertEvent]:
        if not events:
            return []
        self._storage.history.append(events)
        self._storage.alert_states.save(self.state.to_dict())
        self._snapshot()
        return events

    def _snapshot(self) -> None:
        active = active_alerts(self.state)
        levels: dict[str, str] = {}
        for alert in active:
            if alert.state != "firing":
                continue
            key = alert.machine_key
            if SEVERITY_ORDER.get(alert.level, 0) > SEVERITY_ORDER.get(levels.get(key, "ok"), 0):
                levels[key] = alert.level
        self._active = active
        self._levels = levels

    # --- reads (any thread: immutable snapshots) -------------------------------------------

    def active(self) -> list[ActiveAlert]:
        """Pending and firing alerts, most severe first."""
        return list(self._active)

    def firing_levels(self) -> dict[str, str]:
        """Worst firing level (``warning``/``critical``) per machine key."""
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
