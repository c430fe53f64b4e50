"""Notifications on alert transitions: webhooks (Alertmanager v4 webhook shape) and an
optional Alertmanager ``/api/v2/alerts`` push, with retries and exponential backoff.

Payload builders are pure functions of ``srvmon_core`` AlertEvents; :class:`Notifier` does
the I/O on the IOLoop. Silenced events never reach it (the live publisher leaves them out).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from srvmon_core.alert_state import AlertEvent
from srvmon_core.names import display_name

log = logging.getLogger(__name__)

RECEIVER = "srvmon"
NOTIFIED_STATES = {"firing": "firing", "resolved": "resolved", "ok": "resolved"}
"""Transitions that notify, and the Alertmanager status they map to. Pending never notifies."""
ZERO_TIME = "0001-01-01T00:00:00Z"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def notification_status(event: AlertEvent) -> str | None:
    """``firing``/``resolved`` for a transition that notifies, None otherwise."""
    if event.from_state == "pending" and event.to_state in ("ok", "resolved"):
        return None  # never fired, nothing to resolve
    return NOTIFIED_STATES.get(event.to_state)


def _labels(event: AlertEvent) -> dict[str, str]:
    labels = {
        "alertname": event.rule_name or event.rule_id or "srvmon",
        "rule_id": event.rule_id,
        "machine": event.machine_key,
        "machine_name": _shown_name(event),
        "host_id": event.host_id,
        "metric": event.metric or "",
        "severity": event.level,
    }
    return {k: v for k, v in labels.items() if v}


def _shown_name(event: AlertEvent) -> str:
    """``vm`` or ``vm/db`` (the key when the event has no hostname)."""
    if event.machine_kind == "container" and not event.hostname:
        return event.machine_key
    return display_name(event.machine_kind, event.hostname, event.machine_name)


def _annotations(event: AlertEvent) -> dict[str, str]:
    summary = (
        f"{event.metric} on {_shown_name(event)} ({event.machine_key}) is {event.value} "
        f"(threshold {event.threshold})"
    )
    return {
        "summary": summary,
        "value": str(event.value),
        "threshold": str(event.threshold),
    }


def _alert(event: AlertEvent, status: str, external_url: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": _labels(event),
        "annotations": _annotations(event),
        "startsAt": _iso(event.started_at or event.at),
        "endsAt": _iso(event.at) if status == "resolved" else ZERO_TIME,
        "generatorURL": f"{external_url.rstrip('/')}/#/machines/{event.machine_key}",
        "fingerprint": event.fingerprint,
    }


def webhook_payloads(events: Sequence[AlertEvent], external_url: str) -> list[dict[str, Any]]:
    """One Alertmanager-v4-shaped webhook body per notifying event."""
    payloads = []
    for event in events:
        status = notification_status(event)
        if status is None:
            continue
        alert = _alert(event, status, external_url)
        group_labels = {"alertname": alert["labels"]["alertname"]}
        payloads.append(
            {
                "version": "4",
                "groupKey": "{}:{alertname="
                + json.dumps(group_labels["alertname"])
                + "}"
                + f":{alert['fingerprint']}",
                "status": status,
                "receiver": RECEIVER,
                "groupLabels": group_labels,
                "commonLabels": alert["labels"],
                "commonAnnotations": alert["annotations"],
                "externalURL": external_url,
                "alerts": [alert],
            }
        )
    return payloads


def alertmanager_alerts(events: Sequence[AlertEvent], external_url: str) -> list[dict[str, Any]]:
    """The body for Alertmanager's ``POST /api/v2/alerts``."""
    out = []
    for event in events:
        status = notification_status(event)
        if status is None:
            continue
        alert = _alert(event, status, external_url)
        item = {k: alert[k] for k in ("labels", "annotations", "startsAt", "generatorURL")}
        if status == "resolved":
            item["endsAt"] = alert["endsAt"]
        out.append(item)
    return out


Sleep = Callable[[float], Awaitable[None]]


class Notifier:
    """Posts payloads with ``retries`` extra attempts, backoff doubling from ``backoff``."""

    def __init__(
        self,
        *,
        webhook_urls: Sequence[str],
        alertmanager_url: str | None,
        external_url: str,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.webhook_urls = tuple(webhook_urls)
        self.alertmanager_url = alertmanager_url
        self.external_url = external_url
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_urls or self.alertmanager_url)

    async def post(self, url: str, body: object) -> bool:
        """POST JSON until a 2xx answer or the retries run out; True when delivered."""
        client = AsyncHTTPClient()
        data = json.dumps(body, separators=(",", ":")).encode()
        delay = self.backoff_seconds
        for attempt in range(self.retries + 1):
            request = HTTPRequest(
                url,
                method="POST",
                body=data,
                headers={"Content-Type": "application/json"},
                request_timeout=self.timeout_seconds,
            )
            try:
                await client.fetch(request)
            except (HTTPClientError, OSError) as exc:
                log.warning("notification to %s failed (attempt %d): %s", url, attempt + 1, exc)
                if attempt < self.retries:
                    await self._sleep(delay)
                    delay *= 2
                continue
            self.sent += 1
            return True
        self.failed += 1
        return False

    async def notify(self, events: Sequence[AlertEvent]) -> None:
        """Send every notifying event to every webhook and to Alertmanager."""
        jobs = [
            self.post(url, payload)
            for payload in webhook_payloads(events, self.external_url)
            for url in self.webhook_urls
        ]
        if self.alertmanager_url:
            alerts = alertmanager_alerts(events, self.external_url)
            if alerts:
                url = self.alertmanager_url.rstrip("/") + "/api/v2/alerts"
                jobs.append(self.post(url, alerts))
        if jobs:
            await asyncio.gather(*jobs)
