"""Replica mode: one of several ``srvmon server`` processes sharing one database.

The Kafka side (consuming the metrics topic in one consumer group, the events topic) is
wired by the composition layer (``srvmon_cli.replica``); this module is what the server
gives it, free of any Kafka client:

- :meth:`Replica.assigned` / :meth:`Replica.revoked`: called on the Kafka thread from the
  consumer's rebalance callbacks; they adopt or release the partitions' hosts on the DB
  thread (``ownership.py``) before returning, then move presence, ``/metrics`` and
  Alertmanager resends along on the IOLoop;
- ``srvmon_server.ingest.ingest_partitioned``: the ingest path for batches taken from a
  partition;
- :meth:`Replica.receive`: events of the other replicas (from the events topic) go to this
  replica's hub; their alert events update its view of the fleet's alerts; announced rule
  and silence changes reload them here.

docs/server.md, "Replica mode", describes the behaviour; docs/architecture.md the design.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from srvmon_core.alert_state import CONVERTER, AlertEvent
from srvmon_core.schema import host_key
from srvmon_server.alerting import Alerting
from srvmon_server.background import Background
from srvmon_server.dbthread import DbThread
from srvmon_server.fleet import Fleet
from srvmon_server.forgetting import Forgetting
from srvmon_server.latest import LatestView
from srvmon_server.notify import Notifier
from srvmon_server.ownership import Ownership
from srvmon_server.payloads import summary_from_json
from srvmon_server.presence import Presence
from srvmon_server.shared_bus import CHANGE_EVENTS, Item, SharedBus
from srvmon_server.storage import MachineRecord, Storage

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def host_of_event(name: str, key: str | None, data: Any) -> str | None:
    """The host key of another replica's event (the host view filters on it): a summary's
    own key, else the ``host_id`` its payload carries, else the machine key's host part."""
    if key is None:
        return None
    if name == "summary":
        return key
    host_id = data.get("host_id") if isinstance(data, dict) else None
    if isinstance(host_id, str) and host_id:
        return host_key(host_id)
    host, sep, _ = key.rpartition(":")
    return host if sep else key


def alert_event_from_json(data: Any) -> AlertEvent:
    """The ``AlertEvent`` of an ``alert`` payload (``payloads.alert_event_json``)."""
    if not isinstance(data, dict):
        raise TypeError("an alert payload must be an object")
    fields = {k: v for k, v in data.items() if k != "machine"}
    event: AlertEvent = CONVERTER.structure(fields, AlertEvent)
    return event


class Replica:
    def __init__(
        self,
        *,
        topic: str,
        origin: str,
        storage: Storage,
        db: DbThread,
        alerting: Alerting,
        presence: Presence,
        latest: LatestView,
        notifier: Notifier,
        bus: SharedBus,
        background: Background,
        clock: Clock,
        publish_alerts: Callable[[list[AlertEvent]], None],
        fleet: Fleet | None = None,
        forgetting: Forgetting | None = None,
    ) -> None:
        self.topic = topic
        self.origin = origin
        self.ownership = Ownership(storage=storage, alerting=alerting, topic=topic)
        self.bus = bus
        self._db = db
        self._alerting = alerting
        self._presence = presence
        self._latest = latest
        self._notifier = notifier
        self._background = background
        self._clock = clock
        self._publish_alerts = publish_alerts
        self._fleet = fleet
        self._forgetting = forgetting
        self._loop: asyncio.AbstractEventLoop | None = None
        self.received_events = 0
        self.bad_messages = 0

    def connect(self, send: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
        """Events go out through ``send`` from now on; rebalance hooks reach ``loop``."""
        self._loop = loop
        self.bus.connect(send, loop)

    # --- rebalances (the Kafka thread) -------------------------------------------------------

    def assigned(self, partitions: Collection[int]) -> None:
        """Partitions given to this replica: adopt their hosts before any of their batches
        is taken (blocks the caller until the DB thread did it)."""
        hosts = self._db.call(self.ownership.assign, partitions, self._clock())
        records = self._db.call(self.ownership.records_of, hosts)
        log.info("assigned partitions %s: adopted %d host(s)", sorted(partitions), len(hosts))
        self._on_loop(self.adopted, hosts, records)

    def revoked(self, partitions: Collection[int], *, lost: bool = False) -> None:
        """Partitions taken away: release their hosts (saving their state first unless the
        partitions were ``lost``: the next holder may have written newer state already)."""
        hosts = self._db.call(lambda: self.ownership.revoke(partitions, save=not lost))
        log.info(
            "%s partitions %s: released %d host(s)",
            "lost" if lost else "revoked",
            sorted(partitions),
            len(hosts),
        )
        self._on_loop(self.released, hosts)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(fn, *args)

    # --- the IOLoop ----------------------------------------------------------------------------

    def adopted(self, hosts: Collection[str], records: Iterable[MachineRecord]) -> None:
        """Watch the adopted hosts' machines here; hold their firing alerts for resends."""
        if not hosts:
            return
        listed = list(records)
        now = self._clock()
        self._presence.add({r.key: r.last_received or r.last_seen for r in listed}, now)
        self._latest.add(listed)
        self._notifier.restore(self._alerting.firing_events(now, set(hosts)))

    def released(self, hosts: Collection[str]) -> None:
        """The released hosts' machines are the next holder's to watch and announce."""
        if not hosts:
            return
        chosen = set(hosts)
        self._presence.forget(m.key for m in self._latest.machines() if m.host_id in chosen)
        self._latest.forget_hosts(chosen)
        self._notifier.release(chosen)

    def receive(self, items: list[Item]) -> None:
        """Events from another replica: to this replica's browsers, and what they change."""
        hub = self.bus.hub
        alerts: list[AlertEvent] = []
        deleted: list[str] = []
        changes: set[str] = set()
        for name, key, data in items:
            if name in CHANGE_EVENTS:
                changes.add(name)
                continue
            hub.publish(name, data, key, host=host_of_event(name, key, data))
            if name == "summary" and self._fleet is not None and isinstance(data, dict):
                try:  # GET /api/v1/machines here lists the other replicas' hosts too
                    self._fleet.take(summary_from_json(data))
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("a summary from another replica is unreadable: %s", exc)
            if name == "machine_deleted" and isinstance(key, str):
                deleted.append(key)
            if name == "alert":
                try:
                    alerts.append(alert_event_from_json(data))
                except Exception as exc:  # a newer replica's payload: shown, not tracked
                    log.warning("an alert event from another replica is unreadable: %s", exc)
        self.received_events += len(items)
        if alerts:
            self._spawn("following other replicas' alerts", self._alerting.observe, alerts)
        if deleted and self._forgetting is not None:
            self._background.spawn(self._forget(deleted))
        if "rules_changed" in changes:
            self._spawn("reloading the rules", self._alerting.reload_rules)
        if "silences_changed" in changes:
            self._background.spawn(self._reload_silences())

    async def _forget(self, keys: list[str]) -> None:
        """Machines deleted through another replica: gone from this one's memory too (the
        engine's state and alerts, presence, names, the fleet)."""
        assert self._forgetting is not None
        try:
            await self._forgetting.forget(keys)
        except Exception:  # the DB thread is shut down: the process is stopping
            log.exception("forgetting machines deleted on another replica failed")

    async def _reload_silences(self) -> None:
        """Silences changed on another replica: they act on this one's alerts at once (the
        ``silenced`` / ``unsilenced`` events are recorded, published and announced here)."""
        try:
            events = await self._db.run(self._alerting.reload_silences, self._clock())
        except Exception:  # the DB may be down: the next change or restart catches up
            log.exception("reloading the silences failed")
            return
        self._publish_alerts(events)

    def _spawn(self, what: str, fn: Callable[..., object], *args: Any) -> None:
        """``fn(*args)`` on the DB thread, in the background; a failure is logged."""

        async def run() -> None:
            try:
                await self._db.run(fn, *args)
            except Exception:  # the DB may be down: the next change or restart catches up
                log.exception("%s failed", what)

        self._background.spawn(run())

    def figures(self) -> dict[str, float]:
        """``srvmon_server_replica_*`` of /metrics."""
        return {
            "replica_hosts": len(self._alerting.owned or ()),
            "replica_events_sent_total": self.bus.sent_events,
            "replica_events_received_total": self.received_events,
        }
