"""Per-container samples: metadata from the Docker API, resource figures from cgroup files.

The Docker API is asked for the list of containers (names, image, labels, state, status)
after container events and every ``resync_seconds``. A container is inspected only when it is
new, its state or health changed, or its main process is gone (a restart between two
readings); the inspection gives health, restart count, exit code, start/finish times, the
pid and the network mode used for network counters.

Resource figures come from the container's cgroup (``cgroups.py``). Only when those files
cannot be found does the collector ask Docker's one-shot stats API for that container; the
batch then says ``container_source = "docker-api"`` or ``"mixed"``.

Definitions follow the docker CLI: cpu % = Δusage_ns / Δwall_ns * 100 (100 = one core);
memory working set = usage - inactive file; memory % = working set / min(limit, host RAM).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import define, evolve, field, frozen

from srvmon_agents.collector import cgroups
from srvmon_agents.collector.events import ContainerEvents
from srvmon_agents.collector.procfs import KeptFile, parse_net_dev
from srvmon_core.rates import CounterTracker
from srvmon_core.schema import ContainerSample, fit_labels

if TYPE_CHECKING:
    from docker import APIClient

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
RATE_NAMES = (
    "cpu",
    "periods",
    "throttled",
    "throttled_ns",
    "io_read",
    "io_write",
    "net_rx",
    "net_tx",
)


@frozen(kw_only=True)
class _Inspected:
    state: str
    health_hint: str | None
    health: str | None
    restart_count: int
    pid: int
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    network_mode: str = "default"


def _docker_time(value: Any) -> datetime | None:
    """Docker's RFC 3339 times with nanoseconds; the zero time means "never"."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    head, _, fraction = value.rstrip("Z").partition(".")
    text = f"{head}.{fraction[:6]}" if fraction else head
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


HEALTH_WORDS = ("healthy", "unhealthy", "health: starting")


def _health_hint(status: str) -> str | None:
    """The health word ending the list API's status text, e.g. ``Up 3 minutes (healthy)``.

    Only the health words count: ``Exited (1) 3 seconds ago`` changes every second and must
    not trigger an inspection.
    """
    if not status.endswith(")"):
        return None
    word = status[status.rfind("(") + 1 : -1]
    return word if word in HEALTH_WORDS else None


@frozen(kw_only=True)
class Counters:
    """Cumulative figures of one container, from cgroup files or the stats API."""

    cpu_usage_ns: int | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    cpu_limit_cores: float | None = None
    memory_working_set_bytes: int | None = None
    memory_limit_bytes: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    pids: int | None = None


def counters_from_cgroup(
    reading: cgroups.CgroupReading, net_rx_bytes: int | None = None, net_tx_bytes: int | None = None
) -> Counters:
    return Counters(
        net_rx_bytes=net_rx_bytes,
        net_tx_bytes=net_tx_bytes,
        cpu_usage_ns=reading.cpu_usage_ns,
        cpu_periods=reading.cpu_periods,
        cpu_throttled_periods=reading.cpu_throttled_periods,
        cpu_throttled_ns=reading.cpu_throttled_ns,
        cpu_limit_cores=reading.cpu_limit_cores,
        memory_working_set_bytes=reading.memory_working_set_bytes,
        memory_limit_bytes=reading.memory_limit_bytes,
        io_read_bytes=reading.io_read_bytes,
        io_write_bytes=reading.io_write_bytes,
        pids=reading.pids,
    )


def counters_from_stats_api(stats: dict[str, Any]) -> Counters:
    """Counters from one ``GET /containers/{id}/stats?stream=false&one-shot=true`` answer."""
    cpu = stats.get("cpu_stats") or {}
    usage = (cpu.get("cpu_usage") or {}).get("total_usage")
    throttling = cpu.get("throttling_data") or {}
    memory = stats.get("memory_stats") or {}
    mem_stats = memory.get("stats") or {}
    mem_usage = memory.get("usage")
    inactive = mem_stats.get("total_inactive_file", mem_stats.get("inactive_file", 0))
    working_set = None
    if mem_usage is not None:
        working_set = mem_usage - inactive if inactive <= mem_usage else mem_usage
    read_total = write_total = 0
    blkio = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for entry in blkio:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read_total += int(entry.get("value", 0))
        elif op == "write":
            write_total += int(entry.get("value", 0))
    networks = stats.get("networks") or {}
    limit = memory.get("limit")
    return Counters(
        cpu_usage_ns=usage,
        cpu_periods=throttling.get("periods"),
        cpu_throttled_periods=throttling.get("throttled_periods"),
        cpu_throttled_ns=throttling.get("throttled_time"),
        memory_working_set_bytes=working_set,
        memory_limit_bytes=limit if limit and limit < cgroups.UNLIMITED_V1_THRESHOLD else None,
        io_read_bytes=read_total if blkio else None,
        io_write_bytes=write_total if blkio else None,
        net_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks.values()),
        net_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks.values()),
        pids=(stats.get("pids_stats") or {}).get("current"),
    )


@define
class ContainerCollector:
    """Turns the Docker API's container list plus cgroup counters into ContainerSamples.

    ``api`` is a ``docker.APIClient`` (see ``engine.connect``). ``clock`` is a monotonic clock
    in seconds, used only for rates.
    """

    api: APIClient
    cgroup_root: Path
    proc_root: Path
    host_memory_total_bytes: int
    clock: Callable[[], float]
    events: ContainerEvents | None = None
    """When set, the list is fetched only after a container event, a stream outage, a
    vanished main process, or ``resync_seconds``; else every call."""
    resync_seconds: float = 60.0
    """Re-list even without events this often (events cover every change; this is a guard
    against a lost event)."""
    limits_seconds: float = 10.0
    """How long cgroup limits (CPU quota, memory limit) are reused before re-reading them."""
    _listed: list[dict[str, Any]] = field(factory=list)
    _listed_at: float | None = None
    list_calls: int = 0
    _inspected: dict[str, _Inspected] = field(factory=dict)
    _cgroups: dict[str, cgroups.CgroupLocation] = field(factory=dict)
    _gone: set[str] = field(factory=set)
    """Running containers whose main process vanished, found once per reading."""
    _limits: dict[str, tuple[float, cgroups.CgroupLimits]] = field(factory=dict)
    _files: cgroups.OpenFiles = field(factory=cgroups.OpenFiles)
    """Per-interval cgroup files of running containers, kept open (see ``OpenFiles``)."""
    _net_files: dict[str, KeptFile] = field(factory=dict)
    """Each running container's ``<proc>/<pid>/net/dev``, kept open while that pid runs (an
    open file holds its network namespace, so it is closed as soon as the container stops)."""
    _rates: CounterTracker = field(factory=CounterTracker)
    last_source: str = "none"
    inspections: int = 0
    api_fallbacks: int = 0

    def _list(self) -> list[dict[str, Any]]:
        now = self.clock()
        proc = str(self.proc_root)
        self._gone = {
            container_id
            for container_id, meta in self._inspected.items()
            if meta.state == "running" and not os.path.exists(f"{proc}/{meta.pid}")
        }
        stale = (
            self.events is None
            or self._listed_at is None
            or now - self._listed_at >= self.resync_seconds
            or self.events.changed()
            or bool(self._gone)
        )
        if stale:
            self._listed = self.api.containers(all=True)
            self._listed_at = now
            self.list_calls += 1
        return self._listed

    def collect(self) -> list[ContainerSample]:
        listed = self._list()
        samples: list[ContainerSample] = []
        live: set[str] = set()
        sources: set[str] = set()
        for entry in listed:
            container_id = str(entry["Id"])
            names = entry.get("Names") or [container_id[:12]]
            name = str(names[0]).lstrip("/")
            meta = self._metadata(container_id, entry)
            if meta is None:
                continue
            base: dict[str, Any] = {
                "id": container_id,
                "name": name,
                "image": str(entry.get("Image", "")),
                "labels": fit_labels(dict(entry.get("Labels") or {})),
                "state": meta.state,
                "health": meta.health,
                "restart_count": meta.restart_count,
                "started_at": meta.started_at,
                "finished_at": meta.finished_at,
                "exit_code": meta.exit_code if meta.state != "running" else None,
            }
            if meta.state != "running" or meta.pid <= 0:
                samples.append(ContainerSample(**base))
                continue
            counters, source = self._counters(container_id, meta)
            if counters is None:
                samples.append(ContainerSample(**base))
                continue
            live.add(container_id)
            sources.add(source)
            samples.append(ContainerSample(**base, **self.figures(container_id, counters)))
        self._forget_except(live, {str(e["Id"]) for e in listed})
        if not sources:
            self.last_source = "none"
        elif len(sources) == 1:
            self.last_source = sources.pop()
        else:
            self.last_source = "mixed"
        return samples

    def _metadata(self, container_id: str, entry: dict[str, Any]) -> _Inspected | None:
        state = str(entry.get("State", ""))
        hint = _health_hint(str(entry.get("Status", "")))
        cached = self._inspected.get(container_id)
        stale = cached is None or cached.state != state or cached.health_hint != hint
        if not stale and state == "running":
            stale = container_id in self._gone
        if not stale:
            return cached
        try:
            info = self.api.inspect_container(container_id)
        except Exception as exc:
            log.debug("container %s vanished while inspecting: %s", container_id[:12], exc)
            self._inspected.pop(container_id, None)
            return None
        self.inspections += 1
        st = info.get("State") or {}
        health = (st.get("Health") or {}).get("Status")
        inspected = _Inspected(
            state=str(st.get("Status", state)),
            health_hint=hint,
            health=str(health) if health else None,
            restart_count=int(info.get("RestartCount") or 0),
            pid=int(st.get("Pid") or 0),
            exit_code=int(st["ExitCode"]) if st.get("ExitCode") is not None else None,
            started_at=_docker_time(st.get("StartedAt")),
            finished_at=_docker_time(st.get("FinishedAt")),
            network_mode=str((info.get("HostConfig") or {}).get("NetworkMode") or "default"),
        )
        if inspected.state != state:
            # The list and the inspection disagree (a transition in between): cache under the
            # listed state so the next interval re-inspects.
            inspected = evolve(inspected, state=state)
        self._inspected[container_id] = inspected
        return inspected

    def _counters(self, container_id: str, meta: _Inspected) -> tuple[Counters | None, str]:
        location = self._cgroups.get(container_id) or cgroups.locate(self.cgroup_root, container_id)
        if location is not None:
            now = self.clock()
            cached = self._limits.get(container_id)
            fresh = cached is not None and now - cached[0] < self.limits_seconds
            try:
                limits = cached[1] if fresh and cached else None
                reading = cgroups.read(location, limits, self._files)
                if not fresh:
                    self._limits[container_id] = (now, cgroups.limits_of(reading))
            except cgroups.CgroupGone:
                self._cgroups.pop(container_id, None)
                self._files.forget(location.files.values())
                return None, "cgroup"
            if reading.cpu_usage_ns is not None:
                self._cgroups[container_id] = location
                rx, tx = self._network(container_id, meta)
                return counters_from_cgroup(reading, rx, tx), "cgroup"
            self._files.forget(location.files.values())
        return self._counters_from_api(container_id)

    def _network(self, container_id: str, meta: _Inspected) -> tuple[int | None, int | None]:
        """Bytes received and sent outside ``lo``, from the container's network namespace.

        ``none``: only ``lo`` exists, so both are 0 without reading anything. ``host``: the
        namespace is the host's, already reported as host figures, so nothing (absent).
        """
        if meta.network_mode == "none":
            return 0, 0
        if meta.network_mode == "host":
            return None, None
        path = f"{self.proc_root}/{meta.pid}/net/dev"
        kept = self._net_files.get(container_id)
        if kept is None or kept.path != path:
            if kept is not None:
                kept.close()
            kept = self._net_files[container_id] = KeptFile(path)
        text = kept.text()
        if text is None:
            return None, None
        net = parse_net_dev(text)
        rx = sum(v.rx_bytes for k, v in net.items() if k != "lo")
        tx = sum(v.tx_bytes for k, v in net.items() if k != "lo")
        return rx, tx

    def _counters_from_api(self, container_id: str) -> tuple[Counters | None, str]:
        self.api_fallbacks += 1
        try:
            stats = self.api.stats(container_id, stream=False, one_shot=True)
        except Exception as exc:
            log.debug("stats of %s failed: %s", container_id[:12], exc)
            return None, "docker-api"
        if not isinstance(stats, dict) or not stats.get("cpu_stats"):
            return None, "docker-api"
        return counters_from_stats_api(stats), "docker-api"

    def figures(self, container_id: str, c: Counters) -> dict[str, Any]:
        """ContainerSample resource fields from cumulative counters (rates need 2 calls)."""
        now = self.clock()
        out: dict[str, Any] = {"cpu_limit_cores": c.cpu_limit_cores, "pids": c.pids}

        def per_s(name: str, value: int | None) -> float | None:
            if value is None:
                return None
            return self._rates.update((container_id, name), float(value), now)

        cpu_ns = per_s("cpu", c.cpu_usage_ns)
        out["cpu_percent"] = None if cpu_ns is None else cpu_ns / NS_PER_S * 100.0
        periods = per_s("periods", c.cpu_periods)
        throttled = per_s("throttled", c.cpu_throttled_periods)
        if periods is not None and throttled is not None and periods > 0:
            out["cpu_throttled_percent"] = min(100.0, throttled / periods * 100.0)
        throttled_ns = per_s("throttled_ns", c.cpu_throttled_ns)
        if throttled_ns is not None:
            out["cpu_throttled_seconds_per_s"] = throttled_ns / NS_PER_S
        if c.memory_working_set_bytes is not None:
            limit = self.host_memory_total_bytes
            if c.memory_limit_bytes is not None:
                limit = min(limit, c.memory_limit_bytes)
            out["memory_working_set_bytes"] = c.memory_working_set_bytes
            out["memory_limit_bytes"] = limit
            out["memory_percent"] = c.memory_working_set_bytes / limit * 100.0 if limit else None
        out["block_read_bytes_per_s"] = per_s("io_read", c.io_read_bytes)
        out["block_write_bytes_per_s"] = per_s("io_write", c.io_write_bytes)
        out["net_rx_bytes_per_s"] = per_s("net_rx", c.net_rx_bytes)
        out["net_tx_bytes_per_s"] = per_s("net_tx", c.net_tx_bytes)
        return out

    def _forget_except(self, running: set[str], listed: set[str]) -> None:
        """Drop rate trackers of containers not running now, and caches of removed ones."""
        keep: set[Hashable] = {(c, name) for c in running for name in RATE_NAMES}
        self._rates.forget_missing(keep)
        for container_id in [c for c in self._inspected if c not in listed]:
            del self._inspected[container_id]
        for container_id in [c for c in self._cgroups if c not in running]:
            self._files.forget(self._cgroups.pop(container_id).files.values())
        for container_id in [c for c in self._limits if c not in running]:
            del self._limits[container_id]
        for container_id in [c for c in self._net_files if c not in running]:
            self._net_files.pop(container_id).close()
