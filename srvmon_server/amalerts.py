"""Alertmanager-shaped alerts from srvmon's alert events, and the set srvmon announced.

Pure: no I/O, no clock. :mod:`srvmon_server.notify` posts what this module builds.

An *announced* alert (:class:`Notice`) is what Alertmanager calls an alert: a label set
with annotations, a start and, once resolved, an end. Its label set never changes during
its life, as with Prometheus. ``severity`` is one of its labels, so that Alertmanager
routes can send critical alerts to a pager and warnings elsewhere; a srvmon alert that
changes severity therefore *resolves* the alert announced at the old severity and fires
a new one at the new severity (docs/server.md, "Alertmanager"). Any other label change
(a renamed rule, a renamed host) does the same.

:class:`Announced` keeps, per srvmon alert (rule on machine, its ``fingerprint``), the
notice it holds firing; resolves and resends reuse that notice's exact labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from attrs import evolve, frozen

from srvmon_core.alert_state import AlertEvent
from srvmon_core.rules import Rule

ZERO_TIME = "0001-01-01T00:00:00Z"
"""What Alertmanager writes as the ``endsAt`` of a firing alert in its webhooks."""
RECEIVER = "srvmon"
SOURCE = "srvmon"
"""The ``source`` label of every alert srvmon sends: what Alertmanager routes match on."""
NOTIFIED_STATES = {"firing": "firing", "resolved": "resolved", "ok": "resolved"}
"""Transitions that notify, and the Alertmanager status they map to. Pending never notifies."""

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over the sorted names and
    values, each followed by the byte 0xff), as 16 hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in (*part.encode(), 0xFF):
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


@frozen(kw_only=True)
class Notice:
    """One alert as Alertmanager holds it."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    """None while firing; the resolve time once resolved."""
    generator_url: str

    @property
    def status(self) -> str:
        return "firing" if self.ends_at is None else "resolved"

    def resolved(self, at: datetime) -> Notice:
        return evolve(self, ends_at=at)

    def api_json(self, valid_until: datetime) -> dict[str, Any]:
        """An item of Alertmanager's ``POST /api/v2/alerts`` body. A firing alert is valid
        until ``valid_until`` (then Alertmanager resolves it unless it is sent again)."""
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(self.starts_at),
            "endsAt": iso(valid_until if self.ends_at is None else self.ends_at),
            "generatorURL": self.generator_url,
        }

    def webhook_json(self) -> dict[str, Any]:
        """An item of ``alerts`` in an Alertmanager v4 webhook body."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(self.starts_at),
            "endsAt": ZERO_TIME if self.ends_at is None else iso(self.ends_at),
            "generatorURL": self.generator_url,
            "fingerprint": label_fingerprint(self.labels),
        }


@frozen(kw_only=True)
class Lookups:
    """What an event does not carry: its rule (for the wording) and, for an event stored
    before events carried one, the machine's hostname (for labels and summaries). Either
    may answer None (a deleted rule, a machine not seen yet)."""

    rule: Callable[[str], Rule | None] = lambda _rule_id: None
    hostname: Callable[[str], str | None] = lambda _machine_key: None


def number(value: float) -> str:
    """97.0 → ``97``, 0.123456 → ``0.123456``, 1234567.0 → ``1234567``."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _where(event: AlertEvent, hostname: str | None) -> str:
    if event.machine_kind == "container":
        return f"container {event.machine_name} on {hostname or event.host_id}"
    return hostname or event.machine_name or event.machine_key


def summary(event: AlertEvent, rule: Rule | None, hostname: str | None) -> str:
    """One line, worded per rule kind, e.g. ``node-a silent for 62 s``."""
    where = _where(event, hostname)
    value = event.value
    kind = rule.kind if rule is not None else ("threshold" if event.metric else None)
    if kind == "threshold" and event.metric and value is not None:
        text = f"{event.metric} on {where} is {number(value)}"
        if event.threshold is not None:
            direction = rule.direction if rule is not None else "above"
            text += f" ({event.level} {direction} {number(event.threshold)})"
        return text
    if kind == "silent":
        return f"{where} silent for {round(value)} s" if value is not None else f"{where} silent"
    if kind == "container_stopped":
        code = f" (exit code {number(value)})" if value is not None else ""
        return f"{where} stopped{code}"
    if kind == "container_restarted":
        count = f" ({number(value)} restarts in all)" if value is not None else ""
        return f"{where} restarted{count}"
    if kind == "container_unhealthy":
        return f"{where} is unhealthy"
    return f"{event.rule_name or event.rule_id} on {where}"


def alert_labels(event: AlertEvent, hostname: str | None) -> dict[str, str]:
    """The label set: absent values are left out, never written as ``None``."""
    out = {
        "alertname": event.rule_name or event.rule_id or "srvmon",
        "severity": event.level,
        "source": SOURCE,
        "rule_id": event.rule_id,
        "machine": event.machine_key,
        "kind": event.machine_kind,
        "host_id": event.host_id,
        "hostname": hostname or "",
        "container": event.machine_name if event.machine_kind == "container" else "",
        "metric": event.metric or "",
    }
    return {k: v for k, v in out.items() if v}


def alert_annotations(event: AlertEvent, rule: Rule | None, hostname: str | None) -> dict[str, str]:
    out = {"summary": summary(event, rule, hostname)}
    if event.value is not None:
        out["value"] = number(event.value)
    if event.threshold is not None:
        out["threshold"] = number(event.threshold)
    return out


def notification_status(event: AlertEvent) -> str | None:
    """``firing``/``resolved`` for a transition that notifies, None otherwise."""
    if event.from_state == "pending" and event.to_state in ("ok", "resolved"):
        return None  # never fired, nothing to resolve
    return NOTIFIED_STATES.get(event.to_state)


def dashboard_path(event: AlertEvent) -> str:
    """The dashboard page of the alert's machine: ``#/host/<host id>`` for a host,
    ``#/host/<host id>/container/<name>`` for a container."""
    host = quote(event.host_id, safe="")
    if event.machine_kind == "container":
        return f"#/host/{host}/container/{quote(event.machine_name, safe='')}"
    return f"#/host/{host}"


class Announced:
    """The alerts srvmon holds firing, per srvmon alert fingerprint.

    :meth:`apply` turns one event into the notices to send now:

    - a first firing: the new notice (none when the event is silenced);
    - a repeat at the same labels: the held notice with fresh annotations (none when
      silenced: it stays held, so resends keep it alive);
    - a severity (or other label) change: the held notice resolved, then the new one
      (the new one only when not silenced);
    - a resolve: the held notice resolved (even when silenced: what was announced is
      closed); nothing when nothing was announced.
    """

    def __init__(self, external_url: str, lookups: Lookups) -> None:
        self._external_url = external_url.rstrip("/")
        self._lookups = lookups
        self._firing: dict[str, Notice] = {}

    def __len__(self) -> int:
        return len(self._firing)

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._firing

    def firing(self) -> list[Notice]:
        return list(self._firing.values())

    def notice(self, event: AlertEvent, starts_at: datetime) -> Notice:
        """The alert as ``event`` tells it. Its hostname is the event's own: the engine
        writes it from the very sample that caused the event, so the label set does not
        depend on whether that sample's live view was published yet (a periodic
        reconcile can announce an alert before the ingest that fired it has). The
        lookup answers only for events stored before events carried a hostname."""
        rule = self._lookups.rule(event.rule_id)
        hostname = event.hostname or self._lookups.hostname(event.machine_key)
        return Notice(
            labels=alert_labels(event, hostname),
            annotations=alert_annotations(event, rule, hostname),
            starts_at=starts_at,
            generator_url=f"{self._external_url}/{dashboard_path(event)}",
        )

    def apply(self, event: AlertEvent) -> list[Notice]:
        status = notification_status(event)
        if status is None:
            return []
        key = event.fingerprint
        held = self._firing.get(key)
        if status == "resolved":
            if held is None:
                return []
            del self._firing[key]
            return [held.resolved(event.at)]
        # a first announcement: a firing, or a silence ending on an alert that fired under it
        first = held is None and event.kind in ("firing", "unsilenced")
        fresh = self.notice(event, (event.started_at or event.at) if first else event.at)
        if held is not None and held.labels == fresh.labels:
            updated = evolve(held, annotations=fresh.annotations)
            self._firing[key] = updated
            # a first ``firing`` already held was announced by ``restore``/a reconcile
            return [] if event.silenced or event.kind == "firing" else [updated]
        out: list[Notice] = []
        if held is not None:
            del self._firing[key]
            out.append(held.resolved(event.at))
        if not event.silenced:
            self._firing[key] = fresh
            out.append(fresh)
        return out

    def release(self, host_ids: Collection[str]) -> None:
        """Stop holding the alerts of these hosts: another process evaluates them now and
        sends their resends and resolves."""
        self._firing = {
            k: n for k, n in self._firing.items() if n.labels.get("host_id") not in host_ids
        }

    def forget(self, machine_keys: Collection[str], at: datetime) -> list[Notice]:
        """Stop holding the alerts of these (deleted) machines; their notices resolved at
        ``at``, for the Alertmanagers to close now rather than when they expire."""
        gone = [k for k, n in self._firing.items() if n.labels.get("machine") in machine_keys]
        return [self._firing.pop(k).resolved(at) for k in gone]

    def restore(self, events: Iterable[AlertEvent]) -> None:
        """Hold these firing alerts (the active set at a start), without notifying."""
        for event in events:
            if not event.silenced:
                self._firing[event.fingerprint] = self.notice(event, event.started_at or event.at)


def _group_key(group_labels: Mapping[str, str]) -> str:
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return "{}:{" + inner + "}"


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_body(notices: list[Notice], external_url: str) -> dict[str, Any]:
    """An Alertmanager v4 webhook body for the notices of one event (one srvmon alert;
    two notices when its severity changed): grouped by ``alertname`` and ``machine``."""
    common_labels = _common([n.labels for n in notices])
    group_labels: dict[str, str] = {
        k: common_labels[k] for k in ("alertname", "machine") if k in common_labels
    }
    return {
        "version": "4",
        "groupKey": _group_key(group_labels),
        "truncatedAlerts": 0,
        "status": "firing" if any(n.ends_at is None for n in notices) else "resolved",
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([n.annotations for n in notices]),
        "externalURL": external_url,
        "alerts": [n.webhook_json() for n in notices],
    }
