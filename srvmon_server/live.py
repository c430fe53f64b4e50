"""What the server announces: ``sample``, ``machine`` and ``alert`` events on the event bus,
and notifications for alerts that are not silenced.

Runs on the IOLoop. Values arrive typed (a ``BatchView``, ``AlertEvent``s) and become
JSON here, at the edge (``payloads.py``).

In-process subscribers that want the typed values rather than the bus's JSON (the legacy
routes, ``srvmon_server/legacy``) register a :class:`Listener` with :meth:`Live.listen`:
it gets every stored batch's view and every alert event, in the order they are published.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from srvmon_core.alert_state import AlertEvent
from srvmon_core.view import BatchView
from srvmon_server.background import Background
from srvmon_server.bus import EventBus
from srvmon_server.latest import LatestView
from srvmon_server.notify import Notifier, Outbox
from srvmon_server.payloads import alert_event_json, sample_json
from srvmon_server.presence import Presence
from srvmon_server.stats import Stats

log = logging.getLogger(__name__)


class Listener(Protocol):
    """An in-process subscriber to what the server announces. Its methods run on the
    IOLoop and must not block; an exception is logged and never reaches the ingest path."""

    def stored(self, view: BatchView) -> None:
        """A batch was stored: its view, right after its ``sample`` events."""

    def alert(self, event: AlertEvent) -> None:
        """An alert event (silenced ones too), right after it was published."""

    def close(self) -> None:
        """The server stops: end whatever streams the listener feeds."""


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Live:
    def __init__(
        self,
        *,
        bus: EventBus,
        presence: Presence,
        notifier: Notifier,
        stats: Stats,
        background: Background,
        latest: LatestView,
    ) -> None:
        self.bus = bus
        self.presence = presence
        self.notifier = notifier
        self.stats = stats
        self.background = background
        self.latest = latest
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Give ``listener`` every stored batch's view and every alert event from now on."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Close every listener (graceful shutdown, beside ``Hub.close_all``); idempotent."""
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            try:
                listener.close()
            except Exception:
                log.exception("closing live listener %r failed", listener)

    def stored(self, view: BatchView, received_at: datetime, levels: dict[str, str]) -> None:
        """The ``sample`` events of a stored batch, then ``machine`` events for machines
        that are new or back (``levels``: firing levels before the batch was evaluated)."""
        self.latest.update(view, received_at)
        timestamp = iso(view.timestamp)
        machines = view.machines
        publish = self.bus.publish
        for machine in machines:
            publish("sample", sample_json(machine, timestamp), machine.key)
        for listener in self._listeners:
            try:
                listener.stored(view)
            except Exception:  # a listener's bug must not stop the ingest pipeline
                log.exception("live listener %r failed on a stored batch", listener)
        for machine in machines:
            key = machine.key
            if self.presence.seen(key, received_at) is not None:
                status = levels.get(key, "ok")
                publish("machine", {"key": key, "status": status, "last_seen": timestamp}, key)

    def alerts(self, events: Sequence[AlertEvent]) -> None:
        """Alert transitions to subscribers and to notifications (which leave out what a
        silence covers, see ``notify.py``)."""
        if not events:
            return
        self.stats.alert_events_total += len(events)
        for event in events:
            self.bus.publish("alert", alert_event_json(event), event.machine_key)
            for listener in self._listeners:
                try:
                    listener.alert(event)
                except Exception:  # a listener's bug must not stop the live stream
                    log.exception("live listener %r failed on an alert event", listener)
        if self.notifier.enabled:
            self.send(self.notifier.announce(events))

    def send(self, outbox: Outbox) -> None:
        """Deliver notifications in the background (ingest never waits for them)."""
        if outbox:
            self.background.spawn(self.notifier.deliver(outbox))

    def sweep(self, now: datetime) -> None:
        """A ``machine`` event for each machine that just went silent."""
        for key, last_seen in self.presence.sweep(now):
            self.bus.publish(
                "machine", {"key": key, "status": "silent", "last_seen": iso(last_seen)}, key
            )
