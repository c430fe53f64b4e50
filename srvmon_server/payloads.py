"""The JSON edge: typed values become JSON-ready data here, for responses and SSE events.

Everything behind this module passes attrs values (``AlertEvent``, ``ActiveAlert``,
``Rule``, ``Silence``, ``MachineView``, ``HistoryEntry``); handlers and the live publisher
call these functions as they write.
"""

from __future__ import annotations

from typing import Any

from srvmon_core.alert_state import CONVERTER, ActiveAlert, AlertEvent
from srvmon_core.rules import Rule, rule_to_dict
from srvmon_core.silences import Silence, silence_to_dict
from srvmon_core.view import MachineView
from srvmon_server.storage.history import HistoryEntry


def alert_event_json(event: AlertEvent) -> dict[str, Any]:
    """The ``alert`` SSE payload: the event's fields plus ``machine`` (= ``machine_key``)."""
    data: dict[str, Any] = event.to_dict()
    data["machine"] = event.machine_key
    return data


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    """A history event: the ``alert`` payload plus its ``id``."""
    data = alert_event_json(entry.event)
    data["id"] = entry.id
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
