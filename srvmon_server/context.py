"""ServerContext: everything the handlers share, built complete by :func:`build_context`.

One value per job: the configuration, the storage gateway, the DB thread, the SSE hub
and the event bus it is published through, presence, notifications, the server's own
figures, background tasks, the alerting service, the live publisher (with the fleet's
host summaries) and the periodic jobs; in replica mode also the replica (``replica.py``:
partitions, hosts, the shared bus).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from attrs import frozen
from prometheus_client.registry import Collector

from srvmon_core.rules import Rule
from srvmon_server.alerting import Alerting
from srvmon_server.amalerts import Lookups
from srvmon_server.background import Background
from srvmon_server.backlog import Backlog
from srvmon_server.bus import EventBus
from srvmon_server.config import ServerConfig
from srvmon_server.dbthread import DbThread
from srvmon_server.fleet import Fleet
from srvmon_server.forgetting import Forgetting
from srvmon_server.hub import Hub
from srvmon_server.latest import LatestView
from srvmon_server.live import Live
from srvmon_server.names import MachineDirectory
from srvmon_server.notify import Notifier
from srvmon_server.periodic import Periodic
from srvmon_server.presence import Presence
from srvmon_server.prometheus import (
    MachineCollector,
    RejectedCollector,
    ReplicaCollector,
    Scrape,
    ServerCollector,
    registry,
)
from srvmon_server.replica import Replica
from srvmon_server.shared_bus import SharedBus
from srvmon_server.stats import Stats, server_figures
from srvmon_server.storage import Storage
from srvmon_server.tokens import Tokens

Clock = Callable[[], datetime]
T = TypeVar("T")
log = logging.getLogger(__name__)


@frozen(kw_only=True)
class ServerContext:
    config: ServerConfig
    storage: Storage
    clock: Clock
    db: DbThread
    hub: Hub
    bus: EventBus
    presence: Presence
    notifier: Notifier
    stats: Stats
    background: Background
    alerting: Alerting
    live: Live
    periodic: Periodic
    latest: LatestView
    metrics: Scrape
    """What /metrics exposes (docs/server.md, "Prometheus /metrics")."""
    tokens: Tokens
    """The live token policy (options + API tokens); ``tokens.policy`` is what auth reads."""
    names: MachineDirectory
    """Machine names → keys (the one resolver of names, keys and globs)."""
    forgetting: Forgetting
    """What a deleted machine leaves in memory (here, or announced by another replica)."""
    backlog: Backlog
    """Ingest under way: how far the server is behind (``backlog.py``)."""
    replica: Replica | None = None
    """Set in replica mode (``config.replica``)."""

    def start(self) -> None:
        """Start the periodic jobs on the running IOLoop (idempotent)."""
        self.periodic.start()

    async def run_db(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the DB thread (``self.db.run``); errors pass through unchanged
        (the handlers map domain errors to HTTP)."""
        return await self.db.run(fn, *args)

    async def reload_rules(self) -> None:
        """The stored rules changed: the engine applies them from the next step on. The one
        place a rule change takes effect; a replica announces it to the others."""
        await self.db.run(self.alerting.reload_rules)
        if self.replica is not None:
            self.replica.bus.announce("rules_changed")

    async def delete_machine(self, key: str) -> list[str] | None:
        """Delete a machine (a host: with its containers) and everything stored of it but
        its alert history: the inventory rows, samples and rollups (in short batches, so
        ingest goes on meanwhile), its alert state. Returns the keys deleted, None for an
        unknown key. A machine that reports again afterwards appears again, afresh.
        Browsers (of every replica) get one ``machine_deleted`` event with the keys."""
        samples = self.storage.samples
        doomed = await self.db.run(samples.doomed, key)
        if doomed is None:
            return None
        keys = sorted(doomed.values())
        await self.forgetting.forget(keys)
        while await self.db.run(samples.delete_rows, list(doomed)):
            pass
        await self.db.run(samples.drop_machines, doomed)
        self.live.deleted(keys)
        return keys

    async def reload_silences(self) -> None:
        """The stored silences changed: they act at once on the live alerts (each alert
        whose flag flips gets a ``silenced`` / ``unsilenced`` event, recorded, published
        and announced: an alert that still fires is notified again when its silence ends),
        and new events are matched against them (on every replica: a replica announces
        the change)."""
        self.live.alerts(await self.db.run(self.alerting.reload_silences, self.clock()))
        if self.replica is not None:
            self.replica.bus.announce("silences_changed")

    def close(self) -> None:
        """Close every stream, stop the jobs and tasks, save the alert state that waits for
        the periodic save (if the database answers), then stop the DB thread."""
        self.hub.close_all()
        self.live.close()
        self.periodic.stop()
        self.background.cancel_all()
        try:
            self.db.call(self.alerting.save_periodic, None)
        except Exception:  # the database may be down: the saved state is at most that old
            log.exception("saving the alert state at shutdown failed")
        self.db.shutdown()


def build_context(
    config: ServerConfig, storage: Storage, clock: Clock, *, bus: EventBus | None = None
) -> ServerContext:
    """Build the context and load it: rules (seeding the defaults on first start), saved
    alert state and silences, and the inventory's last-seen times for presence.

    ``bus`` is where live events go; by default the in-process SSE hub itself.
    """
    db = DbThread()
    hub = Hub(ring_size=config.ring_buffer_size, client_queue_size=config.client_queue_size)
    alerting = Alerting(storage, partial=config.replica is not None)
    shared = None
    if config.replica is not None:
        if bus is not None:
            raise ValueError("replica mode brings its own event bus")
        bus = shared = SharedBus(hub, config.replica.replica_id)
    latest = LatestView()
    notifier = Notifier(
        webhook_urls=config.webhook_urls,
        alertmanager_urls=config.alertmanagers,
        external_url=config.external_url,
        clock=clock,
        lookups=Lookups(rule=_rule_finder(alerting), hostname=latest.hostname),
        resend_seconds=config.alertmanager_resend_seconds,
        retries=config.webhook_retries,
        backoff_seconds=config.webhook_backoff_seconds,
        timeout_seconds=config.webhook_timeout_seconds,
    )
    stats = Stats()
    backlog = Backlog(clock)
    presence = Presence(config.silent_after_seconds)
    background = Background()
    fleet = Fleet()
    live = Live(
        bus=hub if bus is None else bus,
        presence=presence,
        notifier=notifier,
        stats=stats,
        background=background,
        latest=latest,
        fleet=fleet,
        active_alerts=alerting.active,
        summary_interval_seconds=config.summary_interval_seconds,
    )
    tokens = Tokens(storage, config.token_policy)
    try:
        db.call(alerting.load, clock())
        records = db.call(storage.samples.machines)
        db.call(tokens.reload)
    except BaseException:
        db.shutdown()
        raise
    now = clock()
    # A replica watches only the machines of the hosts it adopts (``replica.py``); the
    # names directory knows every machine.
    watched = [] if shared is not None else records
    presence.load({r.key: r.last_received or r.last_seen for r in watched}, now)
    latest.load(watched)
    fleet.load(watched, presence.is_silent, alerting.active())
    notifier.restore(alerting.firing_events(now))
    names = MachineDirectory()
    names.load(records)
    forgetting = Forgetting(
        db=db,
        alerting=alerting,
        presence=presence,
        latest=latest,
        names=names,
        live=live,
        hub=hub,
    )
    replica = None
    figures = server_figures(stats, hub=hub, db=db, notifier=notifier, backlog=backlog, clock=clock)
    machine_families = MachineCollector(
        latest,
        clock,
        silent_after_seconds=config.silent_after_seconds,
        stale_after_seconds=config.metrics_stale_seconds,
    )
    collectors: list[Collector] = [RejectedCollector(lambda: stats.rejected_samples_total)]
    if config.replica is not None and shared is not None:
        replica = Replica(
            topic=config.replica.topic,
            origin=config.replica.replica_id,
            storage=storage,
            db=db,
            alerting=alerting,
            presence=presence,
            latest=latest,
            notifier=notifier,
            bus=shared,
            background=background,
            clock=clock,
            publish_alerts=live.alerts,
            fleet=fleet,
            forgetting=forgetting,
        )
        figures = _with_replica(figures, replica)
        collectors.append(ReplicaCollector(_held(replica)))
    metrics = Scrape(machine_families, registry(*collectors, ServerCollector(figures)))
    periodic = Periodic(
        config=config,
        clock=clock,
        db=db,
        storage=storage,
        alerting=alerting,
        live=live,
        background=background,
        backlog=backlog,
        tokens=tokens,
    )
    return ServerContext(
        config=config,
        storage=storage,
        clock=clock,
        db=db,
        hub=hub,
        bus=live.bus,
        presence=presence,
        notifier=notifier,
        stats=stats,
        background=background,
        alerting=alerting,
        live=live,
        periodic=periodic,
        latest=latest,
        metrics=metrics,
        replica=replica,
        tokens=tokens,
        names=names,
        forgetting=forgetting,
        backlog=backlog,
    )


def _with_replica(
    figures: Callable[[], dict[str, float]], replica: Replica
) -> Callable[[], dict[str, float]]:
    return lambda: {**figures(), **replica.figures()}


def _held(replica: Replica) -> Callable[[], tuple[str, frozenset[int]]]:
    return lambda: (replica.topic, replica.ownership.partitions)


def _rule_finder(alerting: Alerting) -> Callable[[str], Rule | None]:
    """The live rule with this id (rules are few; a deleted rule answers None)."""

    def find(rule_id: str) -> Rule | None:
        return next((r for r in alerting.rules if r.id == rule_id), None)

    return find
