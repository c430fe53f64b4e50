"""The alerting service: the srvmon_core engine run per batch and per tick, with state,
history and silences kept in the storage gateway.

Every method that touches storage runs on the server's single DB thread (the handlers call
them through ``ServerContext.run_db``), so the engine state is never shared between threads;
the IOLoop reads only the snapshots published after each step (``firing_levels``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from srvmon_core.engine import (
    EngineState,
    MachineRef,
    active_alerts,
    check_silence,
    evaluate_view,
)
from srvmon_core.errors import ConfigError
from srvmon_core.rules import Rule, effective_rules, rule_from_dict, rule_to_dict
from srvmon_core.view import BatchView

log = logging.getLogger(__name__)
SEVERITY_ORDER = {"ok": 0, "warning": 1, "critical": 2}


def default_rules() -> list[Rule]:
    """The rules seeded into an empty database (srvmon_core.defaults when present)."""
    try:
        from srvmon_core import defaults
    except ImportError:
        return []
    return list(getattr(defaults, "DEFAULT_RULES", ()))


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)
    return None


def silence_matches(silence: dict[str, Any], event: dict[str, Any], now: datetime) -> bool:
    """True when the silence is active at ``now`` and every matcher globs the event.

    Matchers: ``machine`` (machine key or name), ``rule`` (rule id or name), ``host`` (host id).
    """
    from fnmatch import fnmatchcase

    starts, ends = _instant(silence.get("starts_at")), _instant(silence.get("ends_at"))
    if starts is not None and now < starts:
        return False
    if ends is None or now >= ends:
        return False
    candidates = {
        "machine": (event.get("machine_key"), event.get("machine_name")),
        "rule": (event.get("rule_id"), event.get("rule_name")),
        "host": (event.get("host_id"),),
    }
    matchers = silence.get("matchers") or {}
    if not isinstance(matchers, dict) or not matchers:
        return False
    for name, pattern in matchers.items():
        values = [str(v) for v in candidates.get(name, ()) if v is not None]
        if not any(fnmatchcase(v, str(pattern)) for v in values):
            return False
    return True


class Alerting:
    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.rules: list[Rule] = []
        self.state = EngineState()
        self.silences: list[dict[str, Any]] = []
        self._levels: dict[str, str] = {}
        self._active: list[dict[str, Any]] = []

    # --- loading (DB thread) --------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Seed default rules on first start, then load rules, saved state and silences."""
        defaults = [rule_to_dict(rule) for rule in default_rules()]
        if defaults:
            self.storage.seed_rules(defaults)
        self.reload_rules()
        raw = self.storage.load_alert_state()
        if raw:
            try:
                self.state = EngineState.from_dict(raw)
            except ConfigError as exc:
                log.error("saved alert state is unusable, starting fresh: %s", exc)
        self.reload_silences()
        self._snapshot()

    def reload_rules(self) -> None:
        rules = []
        for data in self.storage.list_rules():
            try:
                rules.append(rule_from_dict(data))
            except ConfigError as exc:
                log.error("stored rule %r skipped: %s", data.get("id"), exc)
        self.rules = rules

    def reload_silences(self) -> None:
        self.silences = list(self.storage.list_silences())

    # --- evaluation (DB thread) -----------------------------------------------------------

    def on_batch(self, view: BatchView, now: datetime) -> list[dict[str, Any]]:
        self.state, events = evaluate_view(self.rules, self.state, view, now)
        return self._record([e.to_dict() for e in events], now)

    def on_tick(self, now: datetime) -> list[dict[str, Any]]:
        self.state, events = check_silence(self.rules, self.state, now)
        return self._record([e.to_dict() for e in events], now)

    def _record(self, events: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        if not events:
            return []
        for event in events:
            event["machine"] = event["machine_key"]
            event["silenced"] = any(silence_matches(s, event, now) for s in self.silences)
        self.storage.append_alert_events(events)
        self.storage.save_alert_state(self.state.to_dict())
        self._snapshot()
        return events

    def _snapshot(self) -> None:
        from srvmon_core.codec import unstructure

        active = [unstructure(a) for a in active_alerts(self.state)]
        levels: dict[str, str] = {}
        for alert in active:
            if alert["state"] != "firing":
                continue
            key = alert["machine_key"]
            if SEVERITY_ORDER.get(alert["level"], 0) > SEVERITY_ORDER.get(levels.get(key, "ok"), 0):
                levels[key] = alert["level"]
        self._active = active
        self._levels = levels

    # --- reads (any thread: immutable snapshots) -------------------------------------------

    def active(self) -> list[dict[str, Any]]:
        return list(self._active)

    def firing_levels(self) -> dict[str, str]:
        """Worst firing level (``warning``/``critical``) per machine key."""
        return dict(self._levels)

    def rules_for(self, record: Any) -> list[dict[str, Any]]:
        ref = MachineRef(
            key=record.key,
            kind=record.kind,
            host_id=record.host_id,
            hostname=record.hostname,
            name=record.name,
            labels=dict(record.labels or {}),
        )
        rules: Sequence[Rule] = self.rules
        return [rule_to_dict(rule) for rule in effective_rules(rules, ref)]
