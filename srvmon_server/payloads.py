"""The JSON edge: typed values become JSON-ready data here, for responses and SSE events.

Everything behind this module passes attrs values (``AlertEvent``, ``ActiveAlert``,
``Rule``, ``Silence``, ``MachineView``, ``HistoryEntry``); handlers and the live publisher
call these functions as they write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from srvmon_core.alert_state import CONVERTER, ActiveAlert, AlertEvent
from srvmon_core.names import MachineName, Resolution
from srvmon_core.rules import Rule, rule_to_dict
from srvmon_core.silences import Silence, silence_to_dict
from srvmon_core.view import MachineView
from srvmon_server.storage.history import HistoryEntry


def alert_event_json(event: AlertEvent) -> dict[str, Any]:
    """The ``alert`` SSE payload: the event's fields plus ``machine`` (= ``machine_key``)."""
    data: dict[str, Any] = event.to_dict()
    data["machine"] = event.machine_key
    return data


def history_json(
    entry: HistoryEntry, hostname: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """A history event: the ``alert`` payload plus its ``id``. ``hostname`` (host id →
    name) fills the hostname of events stored before srvmon kept it."""
    data = alert_event_json(entry.event)
    data["id"] = entry.id
    if not data["hostname"] and hostname is not None:
        data["hostname"] = hostname(entry.event.host_id)
    return data


def active_alert_json(alert: ActiveAlert) -> dict[str, Any]:
    data: dict[str, Any] = CONVERTER.unstructure(alert)
    return data


def rule_json(rule: Rule) -> dict[str, Any]:
    return dict(rule_to_dict(rule))


def silence_json(silence: Silence) -> dict[str, Any]:
    return dict(silence_to_dict(silence))


def sample_json(machine: MachineView, timestamp: str) -> dict[str, Any]:
    """The ``sample`` SSE payload of one machine (``timestamp``: its ISO 8601 form)."""
    return {
        "key": machine.key,
        "kind": machine.kind,
        "host_id": machine.host_id,
        "hostname": machine.hostname,
        "name": machine.name,
        "timestamp": timestamp,
        "metrics": machine.metrics,
        "state": machine.state,
        "health": machine.health,
    }


def machine_name_json(machine: MachineName) -> dict[str, Any]:
    """One machine as a resolver answers it: its key, kind, names and the shown name."""
    return {
        "key": machine.key,
        "kind": machine.kind,
        "host_id": machine.host_id,
        "hostname": machine.hostname,
        "name": machine.name,
        "display": machine.display,
    }


def resolution_json(resolution: Resolution, limit: int | None = None) -> dict[str, Any]:
    """What a pattern picked: ``machines`` (at most ``limit``), their ``count`` and the
    ``shared`` names (a shown name → the keys of the machines that share it)."""
    machines = resolution.machines if limit is None else resolution.machines[:limit]
    return {
        "pattern": resolution.pattern,
        "count": len(resolution.machines),
        "machines": [machine_name_json(m) for m in machines],
        "shared": {name: list(keys) for name, keys in resolution.shared.items()},
    }
