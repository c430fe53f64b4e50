"""The JSON edge: typed values become JSON-ready data here, for responses and SSE events.

Everything behind this module passes attrs values (``AlertEvent``, ``ActiveAlert``,
``Rule``, ``Silence``, ``MachineView``, ``HostSummary``, ``HistoryEntry``); handlers and
the live publisher call these functions as they write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from srvmon_core.alert_state import CONVERTER, ActiveAlert, AlertEvent
from srvmon_core.names import MachineName, Resolution
from srvmon_core.rules import Rule, rule_to_dict
from srvmon_core.silences import Silence, silence_to_dict
from srvmon_core.view import MachineView
from srvmon_server.fleet import ContainerCounts, HostSummary
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


def summary_from_json(data: dict[str, Any]) -> HostSummary:
    """A ``summary`` payload (another replica's) back into its typed value; raises
    ``KeyError``, ``TypeError`` or ``ValueError`` for one this version cannot read."""
    counts = data["container_counts"]
    seen = data["last_seen"]
    return HostSummary(
        key=str(data["key"]),
        host_id=str(data["host_id"]),
        hostname=str(data["hostname"]),
        last_seen=None if seen is None else datetime.fromisoformat(seen.replace("Z", "+00:00")),
        silent=data["status"] == "silent",
        metrics={str(k): float(v) for k, v in data["metrics"].items()},
        containers=ContainerCounts(
            total=int(counts["total"]),
            running=int(counts["running"]),
            unhealthy=int(counts["unhealthy"]),
            problems=int(counts["problems"]),
            states={str(k): int(v) for k, v in counts["states"].items()},
        ),
        alert=None if data["alert"] is None else CONVERTER.structure(data["alert"], ActiveAlert),
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
