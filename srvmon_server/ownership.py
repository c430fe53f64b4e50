"""Which hosts a server replica evaluates: those carried by the Kafka partitions it holds.

Replicas consume the metrics topic in one consumer group, so each partition is held by
exactly one replica at a time, and each host's batches (keyed by host id) travel on one
partition. A replica evaluates exactly the hosts of its partitions:

- **assigned** partitions: it adopts every host recorded on them (``host_partitions``,
  silent hosts included), loading their saved alert state, pending timers and all;
- **revoked** partitions: it saves and releases their hosts (the next holder loads them);
  **lost** ones are released without saving (the next holder may have written already);
- **arrivals**: a batch names its host and the partition it came on. A host not seen on
  that partition before is recorded there; if the partition is held here and the host is
  not yet evaluated here, it is adopted before its batch is evaluated.

Everything runs on the server's DB thread (``DbThread``), like the alerting service.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from srvmon_server.alerting import Alerting
from srvmon_server.storage import MachineRecord, Storage


class Ownership:
    def __init__(self, *, storage: Storage, alerting: Alerting, topic: str) -> None:
        self._storage = storage
        self._alerting = alerting
        self.topic = topic
        self.partitions: frozenset[int] = frozenset()
        """The partitions of ``topic`` this replica holds."""
        self._host_partition: dict[str, int] = {}

    @property
    def hosts(self) -> set[str]:
        """The hosts evaluated here."""
        return set(self._alerting.owned or ())

    def assign(self, partitions: Collection[int], now: datetime) -> list[str]:
        """Hold ``partitions`` too; adopt their recorded hosts; return the hosts adopted."""
        self.partitions = self.partitions | frozenset(partitions)
        self._host_partition.update(self._storage.partitions.hosts(self.topic))
        wanted = set(partitions)
        owned = self.hosts
        hosts = sorted(h for h, p in self._host_partition.items() if p in wanted and h not in owned)
        self._alerting.adopt_hosts(hosts, now)
        return hosts

    def revoke(self, partitions: Collection[int], *, save: bool) -> list[str]:
        """Give up ``partitions``; release (and, with ``save``, save) their hosts; return
        the hosts released."""
        gone = set(partitions)
        self.partitions = self.partitions - gone
        hosts = sorted(h for h in self.hosts if self._host_partition.get(h) in gone)
        self._alerting.release_hosts(hosts, save=save)
        return hosts

    def arrived(self, arrivals: Collection[tuple[str, int]], now: datetime) -> list[str]:
        """Batches of these (host id, partition) pairs are about to be ingested: record
        partitions that changed, release hosts that moved to a partition held elsewhere,
        adopt hosts of held partitions not evaluated here yet. Returns the hosts adopted."""
        moved: dict[str, int] = {}
        for host, partition in arrivals:
            if self._host_partition.get(host) != partition:
                moved[host] = partition
        owned = self._alerting.owned or set()
        if moved:
            self._storage.partitions.record(self.topic, moved)
            self._host_partition.update(moved)
            leave = sorted(h for h, p in moved.items() if p not in self.partitions and h in owned)
            if leave:
                self._alerting.release_hosts(leave)
        held = self.partitions
        adopt = sorted({h for h, p in arrivals if p in held and h not in owned})
        if adopt:
            self._alerting.adopt_hosts(adopt, now)
        return adopt

    def records_of(self, host_ids: Collection[str]) -> list[MachineRecord]:
        """The stored inventory of these hosts' machines (for presence and ``/metrics``)."""
        if not host_ids:
            return []
        return [r for r in self._storage.samples.machines() if r.host_id in host_ids]
