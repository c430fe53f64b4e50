"""What the server announces: ``sample``, ``machine``, ``summary`` and ``alert`` events on
the event bus, and notifications for alerts that are not silenced.

Runs on the IOLoop. Values arrive typed (a ``BatchView``, ``AlertEvent``s) and become
JSON here, at the edge (``payloads.py``). Each host's :class:`~srvmon_server.fleet.HostSummary`
is computed here once per stored sample (and on alert and presence changes) for every
fleet view, and published at most once per host per ``summary_interval_seconds``: a
change that comes sooner is held and the newest held one is sent when the interval is up.

In-process subscribers that want the typed values rather than the bus's JSON (the legacy
routes, ``srvmon_server/legacy``) register a :class:`Listener` with :meth:`Live.listen`:
it gets every stored batch's view and every alert event, in the order they are published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from srvmon_core.alert_state import ActiveAlert, AlertEvent
from srvmon_core.schema import host_key
from srvmon_core.view import BatchView
from srvmon_server.background import Background
from srvmon_server.bus import EventBus
from srvmon_server.fleet import Fleet
from srvmon_server.latest import LatestView
from srvmon_server.notify import Notifier, Outbox
from srvmon_server.payloads import alert_event_json, sample_json, summary_json
from srvmon_server.presence import Presence
from srvmon_server.stats import Stats

Monotonic = Callable[[], float]
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


class SummaryThrottle:
    """At most one summary per host per interval (``interval`` seconds, in fixed windows of
    the monotonic clock). Pure: times are parameters.

    Fixed windows, not "interval since the last one": a host that reports every interval
    with a little jitter then gets each sample published as it comes. A minimum gap would
    hold a sample that came a moment early, and every later one by as much, for good.

    A held summary released when its window is up counts for the window it was held in,
    not the one it goes out in: that window stays free for the host's next sample. Two
    samples of a host within one window (a request that waited, then the next right behind
    it) would otherwise push every later summary of the host to the next window boundary,
    up to one interval late, for good. A host thus gets at most two summaries in a window
    (the held one at its start, its own), and one per window when it reports once a window.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._window: dict[str, int] = {}
        self.held: set[str] = set()

    def _window_of(self, now: float) -> int:
        return int(now // self.interval) if self.interval > 0 else 0

    def offer(self, keys: set[str], now: float) -> list[str]:
        """Of the hosts that changed, the ones to publish now (the others are held)."""
        if self.interval <= 0:
            self.held -= keys
            return sorted(keys)
        window = self._window_of(now)
        due = []
        for key in sorted(keys):
            if window > self._window.get(key, -1):
                self._window[key] = window
                self.held.discard(key)
                due.append(key)
            else:
                self.held.add(key)
        return due

    def release(self, now: float) -> list[str]:
        """The held hosts whose window is up, to publish now; each counts for the window
        it was held in (see the class), so its next sample is not held behind it."""
        window = self._window_of(now)
        due = sorted(k for k in self.held if window > self._window[k])
        for key in due:
            self._window[key] = window - 1
            self.held.discard(key)
        return due

    def next_due(self) -> float | None:
        """When the earliest held host may be published (the next window)."""
        if not self.held:
            return None
        return (min(self._window[k] for k in self.held) + 1) * self.interval


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
        fleet: Fleet,
        active_alerts: Callable[[], list[ActiveAlert]],
        summary_interval_seconds: float = 1.0,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.bus = bus
        self.presence = presence
        self.notifier = notifier
        self.stats = stats
        self.background = background
        self.latest = latest
        self.fleet = fleet
        self._active_alerts = active_alerts
        self._monotonic = monotonic
        self._throttle = SummaryThrottle(summary_interval_seconds)
        self._dirty: set[str] = set()
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Give ``listener`` every stored batch's view and every alert event from now on."""
        self._listeners.append(listener)

    def stored(self, view: BatchView, received_at: datetime, levels: dict[str, str]) -> None:
        """The ``sample`` events of a stored batch, then ``machine`` events for machines
        that are new or back (``levels``: firing levels before the batch was evaluated);
        the host's summary is updated (published once this IOLoop step is done)."""
        self.latest.update(view, received_at)
        timestamp = iso(view.timestamp)
        machines = view.machines
        host = view.host_id
        publish = self.bus.publish
        self.bus.publish_each(
            "sample",
            [machine.key for machine in machines],
            lambda index: sample_json(machines[index], timestamp),
            host=host,
        )
        for listener in self._listeners:
            try:
                listener.stored(view)
            except Exception:  # a listener's bug must not stop the ingest pipeline
                log.exception("live listener %r failed on a stored batch", listener)
        for machine in machines:
            key = machine.key
            if self.presence.seen(key, received_at) is not None:
                status = levels.get(key, "ok")
                data = {"key": key, "status": status, "last_seen": timestamp}
                publish("machine", data, key, host=host)
        if self.fleet.observe(view):
            self._changed({host_key(host)})

    def alerts(self, events: Sequence[AlertEvent]) -> None:
        """Alert transitions to subscribers and to notifications (which leave out what a
        silence covers, see ``notify.py``); the hosts whose worst alert changed get a new
        summary."""
        if not events:
            return
        self.stats.alert_events_total += len(events)
        for event in events:
            data = alert_event_json(event)
            self.bus.publish("alert", data, event.machine_key, host=host_key(event.host_id))
            for listener in self._listeners:
                try:
                    listener.alert(event)
                except Exception:  # a listener's bug must not stop the live stream
                    log.exception("live listener %r failed on an alert event", listener)
        if self.notifier.enabled:
            self.send(self.notifier.announce(events))
        self._changed(self.fleet.set_alerts(self._active_alerts()))

    def send(self, outbox: Outbox) -> None:
        """Deliver notifications in the background (ingest never waits for them)."""
        if outbox:
            self.background.spawn(self.notifier.deliver(outbox))

    def sweep(self, now: datetime, grace_seconds: float = 0.0) -> None:
        """A ``machine`` event for each machine that just went silent (``grace_seconds``:
        how far the server's own ingest is behind, added to the limit); silent hosts get a
        new summary."""
        silent: set[str] = set()
        for key, last_seen in self.presence.sweep(now, grace_seconds):
            data = {"key": key, "status": "silent", "last_seen": iso(last_seen)}
            self.bus.publish("machine", data, key, host=self._host_of(key))
            if self.fleet.set_silent(key, True):
                silent.add(key)
        self._changed(silent)

    def _host_of(self, key: str) -> str:
        if self.fleet.get(key) is not None:
            return key
        host, sep, _ = key.rpartition(":")
        return host if sep else key

    # --- summaries ---------------------------------------------------------------------

    def _changed(self, keys: set[str]) -> None:
        """Hosts whose summary changed: published once the current IOLoop step is done
        (so one batch's samples and its alerts make one summary)."""
        if not keys:
            return
        self._dirty |= keys
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.summarise)
        except RuntimeError:  # no loop (a script driving Live by hand): publish now
            self.summarise()

    def summarise(self) -> None:
        """Publish the summaries that changed and may go now; hold the others until their
        host's interval is up (the newest then wins)."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        for key in self._throttle.offer(dirty, self._monotonic()):
            self._publish_summary(key)
        self._arm_timer()

    def _release_held(self) -> None:
        self._timer = None
        for key in self._throttle.release(self._monotonic()):
            self._publish_summary(key)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            # It is due at the end of the earliest held host's window; a host held since
            # was held in this window or a later one, so it is due no earlier. (Asking
            # ``next_due`` walks every held host: once per ingest request, a fleet's
            # hosts each sending their own, that was 1,000 hosts walked 1,000 times a s.)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        due = self._throttle.next_due()
        if due is None:
            return
        self._timer = loop.call_later(max(0.0, due - self._monotonic()), self._release_held)

    def _publish_summary(self, key: str) -> None:
        summary = self.fleet.get(key)
        if summary is not None:
            self.bus.publish("summary", summary_json(summary), key, host=key)

    def deleted(self, keys: Iterable[str]) -> None:
        """Tell subscribers these machines were deleted: one ``machine_deleted`` event per
        key, on the ``alerts`` topic (every dashboard view has it; the machine's alerts
        went with it), routed by the key and its host (a host id has no ``:``)."""
        for key in keys:
            host = key.partition(":")[0]
            self.bus.publish("machine_deleted", {"key": key, "host_key": host}, key, host=host)

    def forget(self, keys: set[str]) -> list[str]:
        """Deleted machines: their hosts leave the fleet and the held summaries; the host
        keys that left."""
        gone = self.fleet.forget(keys)
        self._dirty.difference_update(gone)
        self._throttle.held.difference_update(gone)
        return gone

    def close(self) -> None:
        """Stop the summary timer and close every listener (graceful shutdown, beside
        ``Hub.close_all``); idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            try:
                listener.close()
            except Exception:
                log.exception("closing live listener %r failed", listener)
