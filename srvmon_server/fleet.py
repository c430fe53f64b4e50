"""The fleet at a glance: one typed summary per host, computed by the server once per
sample for every fleet view, however many browsers watch.

A :class:`HostSummary` is what a fleet tile shows: the host's state (``silent`` from the
server's own presence check, else the worst firing alert's level, else ``ok``), its CPU,
memory, fullest disk and network, its containers counted by state, and the worst active
alert. :class:`Fleet` holds the newest summary of every host; the live publisher sends each
change as a ``summary`` SSE event and ``GET /api/v1/machines`` pages through them.
Pure: no I/O, no clock; runs on the IOLoop.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from attrs import evolve, frozen

from srvmon_core.alert_state import ActiveAlert
from srvmon_core.schema import host_key
from srvmon_core.view import BatchView
from srvmon_server.storage import MachineRecord

SUMMARY_METRICS = (
    "cpu_percent",
    "memory_percent",
    "disk_used_percent_max",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
)
"""The host figures a summary carries (flat metric names, docs/metrics.md)."""
LEVEL_RANK = {"warning": 1, "critical": 2}


@frozen(kw_only=True)
class ContainerCounts:
    """A host's containers by state, as of its newest sample."""

    total: int
    running: int
    unhealthy: int
    problems: int
    """Containers not running, or unhealthy (what a tile flags)."""
    states: dict[str, int]
    """Docker state → how many (``running``, ``exited``, ``restarting``, ...)."""


NO_CONTAINERS = ContainerCounts(total=0, running=0, unhealthy=0, problems=0, states={})


def count_containers(containers: Iterable[tuple[str | None, str | None]]) -> ContainerCounts:
    """Count ``(state, health)`` pairs (once per host per batch: the states are counted
    in C, the health walked only for ``unhealthy``)."""
    pairs = list(containers)
    if not pairs:
        return NO_CONTAINERS
    states = Counter([state or "unknown" for state, _ in pairs])
    running = states.get("running", 0)
    problems = len(pairs) - running  # not running, or running but unhealthy (below)
    unhealthy = 0
    for state, health in pairs:
        if health == "unhealthy":
            unhealthy += 1
            problems += state == "running"
    return ContainerCounts(
        total=len(pairs),
        running=running,
        unhealthy=unhealthy,
        problems=problems,
        states=dict(sorted(states.items())),
    )


@frozen(kw_only=True)
class HostSummary:
    """One host at a glance (the ``summary`` SSE event, a ``/machines`` entry)."""

    key: str
    host_id: str
    hostname: str
    last_seen: datetime | None
    """The time of the host's newest sample (None: only containers were ever seen)."""
    silent: bool
    """No sample received for ``silent_after_seconds`` (the server's presence check)."""
    metrics: dict[str, float]
    """The :data:`SUMMARY_METRICS` the newest host sample carried."""
    containers: ContainerCounts
    alert: ActiveAlert | None
    """The worst firing alert, not silenced, of the host or one of its containers."""

    @property
    def status(self) -> str:
        """``silent``, else the worst firing level (``critical``, ``warning``), else ``ok``."""
        if self.silent:
            return "silent"
        return self.alert.level if self.alert is not None else "ok"


def worst_alerts(active: Iterable[ActiveAlert]) -> dict[str, ActiveAlert]:
    """Host key → its worst firing alert that is not silenced: highest level, then the
    oldest, then by machine key (so the choice is stable)."""
    worst: dict[str, ActiveAlert] = {}
    for alert in active:
        if alert.state != "firing" or alert.silenced:
            continue
        key = host_key(alert.host_id)
        held = worst.get(key)
        if held is None or _rank(alert) < _rank(held):
            worst[key] = alert
    return worst


def _rank(alert: ActiveAlert) -> tuple[int, float, str]:
    since = alert.since.timestamp() if alert.since is not None else float("inf")
    return (-LEVEL_RANK.get(alert.level, 0), since, alert.machine_key)


class Fleet:
    """The newest :class:`HostSummary` of every host, in key order for paging."""

    def __init__(self) -> None:
        self._hosts: dict[str, HostSummary] = {}
        self._order: list[str] = []
        self._worst: dict[str, ActiveAlert] = {}

    def __len__(self) -> int:
        return len(self._hosts)

    def get(self, key: str) -> HostSummary | None:
        return self._hosts.get(key)

    def _put(self, summary: HostSummary) -> None:
        if summary.key not in self._hosts:
            insort(self._order, summary.key)
        self._hosts[summary.key] = summary

    def load(
        self,
        records: Sequence[MachineRecord],
        is_silent: Callable[[str], bool],
        active: Iterable[ActiveAlert],
    ) -> None:
        """Start from the stored inventory: each host's newest figures, the containers
        of its newest sample, presence and the active alerts."""
        self._worst = worst_alerts(active)
        hosts = {r.key: r for r in records if r.kind == "host"}
        containers: dict[str, list[MachineRecord]] = {}
        for record in records:
            if record.kind == "container":
                containers.setdefault(host_key(record.host_id), []).append(record)
        for key in sorted(set(hosts) | set(containers)):
            host = hosts.get(key)
            boxes = containers.get(key, [])
            if host is not None:
                last_seen: datetime | None = host.last_seen
                current = [c for c in boxes if c.last_seen >= host.last_seen]
                host_id, hostname = host.host_id, host.hostname
                metrics = {m: host.metrics[m] for m in SUMMARY_METRICS if m in host.metrics}
            else:
                last_seen = None
                newest = max(c.last_seen for c in boxes)
                current = [c for c in boxes if c.last_seen >= newest]
                host_id, hostname = boxes[0].host_id, boxes[0].hostname
                metrics = {}
            self._put(
                HostSummary(
                    key=key,
                    host_id=host_id,
                    hostname=hostname,
                    last_seen=last_seen,
                    silent=is_silent(key),
                    metrics=metrics,
                    containers=count_containers((c.state, c.health) for c in current),
                    alert=self._worst.get(key),
                )
            )

    def observe(self, view: BatchView) -> bool:
        """Take a stored batch; False (nothing changed) when the host already has a newer
        sample: the newest value wins, whatever order batches arrive in."""
        key = host_key(view.host_id)
        held = self._hosts.get(key)
        if held is not None and held.last_seen is not None and view.timestamp < held.last_seen:
            return False
        if view.host is not None:
            figures = view.host.metrics
            metrics = {m: figures[m] for m in SUMMARY_METRICS if m in figures}
        else:  # the host itself was not read this time: keep its last figures
            metrics = held.metrics if held is not None else {}
        self._put(
            HostSummary(
                key=key,
                host_id=view.host_id,
                hostname=view.hostname,
                last_seen=view.timestamp,
                silent=False,
                metrics=metrics,
                containers=count_containers((c.state, c.health) for c in view.containers),
                alert=self._worst.get(key),
            )
        )
        return True

    def take(self, summary: HostSummary) -> bool:
        """Another replica's summary of a host (replica mode): kept for paging unless a
        newer sample of the host is held already."""
        held = self._hosts.get(summary.key)
        newest = None if held is None else held.last_seen
        if newest is not None and (summary.last_seen is None or summary.last_seen < newest):
            return False
        self._put(summary)
        return True

    def set_alerts(self, active: Iterable[ActiveAlert]) -> set[str]:
        """Take the active alerts; the hosts whose worst alert changed."""
        worst = worst_alerts(active)
        changed = {
            key
            for key in set(worst) | set(self._worst)
            if worst.get(key) != self._worst.get(key) and key in self._hosts
        }
        self._worst = worst
        for key in changed:
            self._hosts[key] = evolve(self._hosts[key], alert=worst.get(key))
        return changed

    def set_silent(self, key: str, silent: bool) -> bool:
        """Mark a host silent (or not); False when it already was, or is unknown."""
        held = self._hosts.get(key)
        if held is None or held.silent == silent:
            return False
        self._hosts[key] = evolve(held, silent=silent)
        return True

    def forget(self, keys: Iterable[str]) -> list[str]:
        """Drop deleted hosts (a container key changes nothing); the host keys dropped."""
        gone = sorted(k for k in set(keys) if k in self._hosts)
        for key in gone:
            del self._hosts[key]
            self._worst.pop(key, None)
        if gone:
            dropped = set(gone)
            self._order = [k for k in self._order if k not in dropped]
        return gone

    def page(self, after: str | None, limit: int) -> tuple[list[HostSummary], str | None]:
        """Up to ``limit`` summaries in key order after the key ``after``, and the cursor
        of the next page (None on the last)."""
        start = bisect_right(self._order, after) if after is not None else 0
        keys = self._order[start : start + limit]
        more = start + limit < len(self._order)
        return [self._hosts[k] for k in keys], (keys[-1] if more and keys else None)
