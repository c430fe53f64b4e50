"""Notifications: webhooks (Alertmanager v4 webhook bodies) and pushes to one or more
Alertmanagers (``POST /api/v2/alerts``), with retries and exponential backoff.

The payloads come from :mod:`srvmon_server.amalerts` (pure); :class:`Notifier` does the
I/O on the IOLoop. It behaves towards Alertmanager as Prometheus does:

- every alert it announced keeps its label set for its whole life; a resolve repeats
  those labels with an ``endsAt``;
- the firing set is re-sent every ``resend_seconds`` (:meth:`Notifier.resend`), each alert
  valid for ``RESEND_VALIDITY`` intervals, so Alertmanager never resolves an alert srvmon
  still fires, and resolves it by itself if srvmon goes away;
- at start the firing set is rebuilt from the engine's active alerts
  (:meth:`Notifier.restore`) and sent at once; an alert that fired under a srvmon silence
  is announced once the silence ends and it still fires (:meth:`Notifier.reconcile`);
- every Alertmanager listed (an HA pair) gets every alert.

Posts to one URL go out in order (one at a time), so a resolve never overtakes the firing
it closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from srvmon_core.alert_state import AlertEvent
from srvmon_server.amalerts import Announced, Lookups, Notice, label_fingerprint, webhook_body

log = logging.getLogger(__name__)

RESEND_VALIDITY = 4
"""A firing alert's ``endsAt`` lies this many resend intervals ahead (as in Prometheus)."""

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]
Outbox = list[tuple[str, object]]
"""Posts to make: (URL, JSON body)."""


class Notifier:
    """Posts payloads with ``retries`` extra attempts, backoff doubling from ``backoff``."""

    def __init__(
        self,
        *,
        webhook_urls: Sequence[str],
        alertmanager_urls: Sequence[str],
        external_url: str,
        clock: Clock,
        lookups: Lookups | None = None,
        resend_seconds: float = 60.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.webhook_urls = tuple(webhook_urls)
        self.alertmanager_urls = tuple(dict.fromkeys(u.rstrip("/") for u in alertmanager_urls))
        self.external_url = external_url
        self.resend_seconds = resend_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.announced = Announced(external_url, lookups or Lookups())
        self._clock = clock
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_urls or self.alertmanager_urls)

    @property
    def alertmanager_active(self) -> int:
        """Alerts held firing in the Alertmanagers (0 when none is configured)."""
        return len(self.announced) if self.alertmanager_urls else 0

    def restore(self, firing: Sequence[AlertEvent]) -> None:
        """Hold the alerts that fire at start (``silenced`` ones are left out); the next
        :meth:`resend` sends them."""
        self.announced.restore(firing)

    def release(self, host_ids: Collection[str]) -> None:
        """Another process (a server replica) evaluates these hosts now: their firing
        alerts are its to re-send and resolve."""
        self.announced.release(host_ids)

    def forget(self, machine_keys: Collection[str]) -> Outbox:
        """These machines were deleted: their firing alerts are no longer re-sent, and the
        Alertmanagers get them resolved now (webhooks are not told: a deletion is no
        alert transition)."""
        return self._push(self.announced.forget(machine_keys, self._clock()))

    async def post(self, url: str, body: object) -> bool:
        """POST JSON until a 2xx answer or the retries run out; True when delivered.
        Posts to one URL go out one at a time, in the order they were asked for."""
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            return await self._post(url, json.dumps(body, separators=(",", ":")).encode())

    async def _post(self, url: str, data: bytes) -> bool:
        client = AsyncHTTPClient()
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

    def _push(self, notices: Sequence[Notice]) -> Outbox:
        """One post of ``notices`` to every Alertmanager."""
        if not notices or not self.alertmanager_urls:
            return []
        valid_until = self._clock() + timedelta(seconds=RESEND_VALIDITY * self.resend_seconds)
        body = [n.api_json(valid_until) for n in notices]
        return [(f"{url}/api/v2/alerts", body) for url in self.alertmanager_urls]

    def announce(self, events: Sequence[AlertEvent]) -> Outbox:
        """What ``events`` change in the announced set, as the posts to make: a webhook body
        per event that changed it, and one push of all the changed alerts to every
        Alertmanager. Synchronous, so announcements happen in the order of the events.
        Silenced events announce nothing new (see ``Announced.apply``)."""
        pushed: dict[str, Notice] = {}
        outbox: Outbox = []
        for event in events:
            notices = self.announced.apply(event)
            if not notices:
                continue
            for notice in notices:  # one alert twice in a push: its latest word wins
                key = label_fingerprint(notice.labels)
                pushed.pop(key, None)
                pushed[key] = notice
            body = webhook_body(notices, self.external_url)
            outbox.extend((url, body) for url in self.webhook_urls)
        outbox.extend(self._push(list(pushed.values())))
        return outbox

    def reconcile(self, firing: Sequence[AlertEvent]) -> Outbox:
        """Announce the alerts that fire, are not silenced and are not announced: those that
        fired under a silence that has ended since."""
        return self.announce(
            [e for e in firing if not e.silenced and e.fingerprint not in self.announced]
        )

    async def deliver(self, outbox: Outbox) -> None:
        if outbox:
            await asyncio.gather(*(self.post(url, body) for url, body in outbox))

    async def notify(self, events: Sequence[AlertEvent]) -> None:
        """``announce`` then ``deliver``."""
        await self.deliver(self.announce(events))

    async def resend(self) -> None:
        """Send every firing alert again to every Alertmanager, valid a few intervals on."""
        await self.deliver(self._push(self.announced.firing()))
