"""The JSON edge: typed values become JSON-ready data here, for responses and SSE events.

Everything behind this module passes attrs values (``AlertEvent``, ``ActiveAlert``,
``Rule``, ``Silence``, ``MachineView``, ``HostSummary``, ``HistoryEntry``); handlers and
the live publisher call these functions as they write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from srvmon_core.alert_state import CONVERTER, ActiveAlert, AlertEvent
from srvmon_core.rules import Rule, rule_to_dict
from srvmon_core.silences import Silence, silence_to_dict
from srvmon_core.view import MachineView
from srvmon_server.fleet import HostSummary
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


def summary_json(summary: HostSummary) -> dict[str, Any]:
    """The ``summary`` SSE payload and a ``GET /api/v1/machines`` entry: one host at a
    glance (docs/api.md)."""
    counts = summary.containers
    return {
        "key": summary.key,
        "host_id": summary.host_id,
        "hostname": summary.hostname,
        "status": summary.status,
        "last_seen": None if summary.last_seen is None else _iso(summary.last_seen),
        "metrics": summary.metrics,
        "container_counts": {
            "total": counts.total,
            "running": counts.running,
            "unhealthy": counts.unhealthy,
            "problems": counts.problems,
            "states": counts.states,
        },
        "alert": None if summary.alert is None else active_alert_json(summary.alert),
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
