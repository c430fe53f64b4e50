"""srvmon alert events (typed ``AlertEvent``) as the original's five alert messages and its
history items. Pure.

The original back end sent one message per breaching sample; srvmon's engine emits
transitions. An event becomes a legacy message when it says a machine *is* in breach:
``firing``, ``escalated``, ``deescalated`` and ``repeat`` (``to_state`` firing), and
``unsilenced`` of a firing alert (a silence ended while it fires). Pending, cancelled,
resolved and ``silenced`` events have no counterpart and are not sent. The message type
follows the rule that fired:

| srvmon rule | legacy ``messageType`` |
|---|---|
| ``threshold``, ``direction`` above | ``thresholdExceeded`` |
| ``threshold``, ``direction`` below | ``thresholdDeceeded`` |
| ``silent`` | ``timeout`` |
| ``container_restarted`` (a new container id, or a restart) | ``containerIdChanged`` |
| ``container_stopped`` | ``zerovalue`` |
| ``container_unhealthy`` | (none: not sent) |

When the rule no longer exists, a threshold event's direction is read from its value
against its threshold, and a non-threshold event of a host is a ``timeout``.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Literal

from attrs import frozen

from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule
from srvmon_server.legacy.java import java_double, local_time, per_loop

MessageType = Literal[
    "thresholdExceeded", "thresholdDeceeded", "timeout", "containerIdChanged", "zerovalue"
]
MESSAGE_TYPES: tuple[MessageType, ...] = (
    "thresholdExceeded",
    "thresholdDeceeded",
    "zerovalue",
    "containerIdChanged",
    "timeout",
)
BREACH_KINDS = frozenset({"firing", "escalated", "deescalated", "repeat"})
"""Event kinds that say "in breach now"; the history reads them as ``to_state=firing``."""

LEGACY_METRICS: dict[str, tuple[str, bool]] = {
    "cpu_percent": ("cpuPercent", False),
    "memory_used_bytes": ("memoryUsage", False),
    "memory_working_set_bytes": ("memoryUsage", False),
    "disk_read_bytes_per_s": ("diskReadDelta", True),
    "block_read_bytes_per_s": ("diskReadDelta", True),
    "disk_write_bytes_per_s": ("diskWriteDelta", True),
    "block_write_bytes_per_s": ("diskWriteDelta", True),
    "net_rx_bytes_per_s": ("networkRx", True),
    "net_tx_bytes_per_s": ("networkTx", True),
    "temperature_max_celsius": ("temperature", False),
}
"""srvmon metric → (the original's metric name, a per-loop delta there). Other metrics keep
their srvmon name and unit."""


@frozen(kw_only=True)
class Machine:
    """How the legacy API names the machine of an event."""

    id: str
    """The host id, or the container's Docker id (its machine key when unknown)."""
    host_name: str


def in_breach(event: AlertEvent) -> bool:
    """Whether the event says its machine is in breach now: a breach kind, or the end of a
    silence on a firing alert (``unsilenced``, which srvmon notifies again too)."""
    return event.kind in BREACH_KINDS or (event.kind == "unsilenced" and event.to_state == "firing")


def message_type(event: AlertEvent, rule: Rule | None) -> MessageType | None:
    """The legacy type of a srvmon alert event, or None when it has none."""
    if not in_breach(event):
        return None
    kind = rule.kind if rule is not None else None
    if kind == "threshold" or (kind is None and event.metric is not None):
        if rule is not None:
            above = rule.direction == "above"
        else:
            value, threshold = event.value, event.threshold
            above = value is None or threshold is None or value >= threshold
        return "thresholdExceeded" if above else "thresholdDeceeded"
    if kind == "silent" or (kind is None and event.machine_kind == "host"):
        return "timeout"
    if kind == "container_restarted":
        return "containerIdChanged"
    if kind == "container_stopped":
        return "zerovalue"
    return None


def _figure(value: float | None, loop: bool, interval_seconds: float) -> str | None:
    if value is None:
        return None
    return java_double(per_loop(value, interval_seconds) if loop else float(value))


def _per_loop(metric: str | None) -> bool:
    return LEGACY_METRICS.get(metric or "", ("", False))[1]


def metric_name(metric: str | None) -> str | None:
    """The original's name of a srvmon metric (its own name when the original had none)."""
    return None if metric is None else LEGACY_METRICS.get(metric, (metric, False))[0]


def alert_message(
    event: AlertEvent,
    kind: MessageType,
    machine: Machine,
    tz: tzinfo,
    interval_seconds: float,
) -> dict[str, Any]:
    """The SSE payload: seven fields for threshold messages, four for the others."""
    message: dict[str, Any] = {"messageType": kind, "machineId": machine.id}
    message["machineName"] = event.machine_name
    if kind in ("thresholdExceeded", "thresholdDeceeded"):
        loop = _per_loop(event.metric)
        message["metricName"] = metric_name(event.metric)
        message["threshold"] = _figure(event.threshold, loop, interval_seconds)
        message["value"] = _figure(event.value, loop, interval_seconds)
    message["timestamp"] = local_time(event.at, tz)
    return message


def history_item(
    event: AlertEvent,
    kind: MessageType,
    machine: Machine,
    tz: tzinfo,
    interval_seconds: float,
) -> dict[str, Any]:
    """One history entry: ``{timestamp, messageType, machineType, machineId, machineName,
    metricName, hostName, threshold, value}`` (null where the type has no such figure)."""
    loop = _per_loop(event.metric)
    return {
        "timestamp": local_time(event.at, tz),
        "messageType": kind,
        "machineType": event.machine_kind,
        "machineId": machine.id,
        "machineName": event.machine_name,
        "metricName": metric_name(event.metric),
        "hostName": machine.host_name,
        "threshold": _figure(event.threshold, loop, interval_seconds),
        "value": _figure(event.value, loop, interval_seconds),
    }
