"""Metric samples and the batch envelope that carries them.

Every class is frozen, slotted and keyword-only. Units are in the field names
(``_bytes``, ``_percent``, ``_per_s``, ``_celsius``, ``_seconds``). Rates are per
second; a rate that cannot be computed yet (first sample of a counter, or a counter
that went backwards) is ``None``, never 0 and never negative.

docs/metrics.md describes every field.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from attrs import field, fields, frozen

SCHEMA_VERSION = 1
"""Version of the wire envelope. Bumped only for incompatible changes."""

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"


class FieldValueError(ValueError):
    """A field failed validation. ``field`` names it and ``reason`` says why.

    A ``ValueError``, so callers constructing samples directly can keep catching that;
    the codec uses ``field`` to build the error path (``$.containers[3].cpu_percent``).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def _finite_non_negative(_inst: object, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise FieldValueError(attribute.name, f"must be a finite number >= 0, got {value!r}")


def _finite(_inst: object, attribute: Any, value: Any) -> None:
    if value is not None and not math.isfinite(value):
        raise FieldValueError(attribute.name, f"must be a finite number, got {value!r}")


def _aware(_inst: object, attribute: Any, value: Any) -> None:
    if value is not None and value.utcoffset() is None:
        raise FieldValueError(attribute.name, "must carry a time zone (UTC)")


def _non_empty(_inst: object, attribute: Any, value: Any) -> None:
    if not value:
        raise FieldValueError(attribute.name, "must not be empty")


def _host_field_names(_inst: object, attribute: Any, value: Any) -> None:
    if not value:
        return
    known = {a.name for a in fields(HostSample)}
    for name in value:
        if name not in known:
            raise FieldValueError(attribute.name, f"names an unknown HostSample field {name!r}")


_nn = _finite_non_negative


@frozen(kw_only=True)
class DiskUsage:
    """Space on one mounted filesystem."""

    mount: str
    device: str
    fstype: str
    total_bytes: int = field(validator=_nn)
    used_bytes: int = field(validator=_nn)
    used_percent: float = field(validator=_nn)


@frozen(kw_only=True)
class DiskIO:
    """Throughput of one physical block device (partitions, loop and dm devices excluded)."""

    device: str
    read_bytes_per_s: float | None = field(default=None, validator=_nn)
    write_bytes_per_s: float | None = field(default=None, validator=_nn)
    read_ops_per_s: float | None = field(default=None, validator=_nn)
    write_ops_per_s: float | None = field(default=None, validator=_nn)


@frozen(kw_only=True)
class NetIO:
    """Traffic of one network interface in the host's network namespace."""

    interface: str
    rx_bytes_per_s: float | None = field(default=None, validator=_nn)
    tx_bytes_per_s: float | None = field(default=None, validator=_nn)
    rx_errors_per_s: float | None = field(default=None, validator=_nn)
    tx_errors_per_s: float | None = field(default=None, validator=_nn)
    rx_drops_per_s: float | None = field(default=None, validator=_nn)
    tx_drops_per_s: float | None = field(default=None, validator=_nn)


@frozen(kw_only=True)
class Temperature:
    """One temperature sensor reading."""

    sensor: str
    celsius: float = field(validator=_finite)
    high_celsius: float | None = field(default=None, validator=_finite)
    critical_celsius: float | None = field(default=None, validator=_finite)


@frozen(kw_only=True)
class HostSample:
    """One reading of a whole host."""

    cpu_percent: float = field(validator=_nn)
    cpu_per_core_percent: tuple[float, ...] = ()
    cpu_iowait_percent: float | None = field(default=None, validator=_nn)
    cpu_steal_percent: float | None = field(default=None, validator=_nn)
    load_1: float = field(validator=_nn)
    load_5: float = field(validator=_nn)
    load_15: float = field(validator=_nn)
    memory_total_bytes: int = field(validator=_nn)
    memory_used_bytes: int = field(validator=_nn)
    memory_available_bytes: int = field(validator=_nn)
    memory_percent: float = field(validator=_nn)
    swap_total_bytes: int = field(default=0, validator=_nn)
    swap_used_bytes: int = field(default=0, validator=_nn)
    swap_percent: float = field(default=0.0, validator=_nn)
    disks: tuple[DiskUsage, ...] = ()
    disk_io: tuple[DiskIO, ...] = ()
    disk_read_bytes_per_s: float | None = field(default=None, validator=_nn)
    disk_write_bytes_per_s: float | None = field(default=None, validator=_nn)
    disk_read_ops_per_s: float | None = field(default=None, validator=_nn)
    disk_write_ops_per_s: float | None = field(default=None, validator=_nn)
    net: tuple[NetIO, ...] = ()
    temperatures: tuple[Temperature, ...] = ()
    uptime_seconds: float = field(default=0.0, validator=_nn)
    process_count: int = field(default=0, validator=_nn)
    not_collected: tuple[str, ...] = field(default=(), validator=_host_field_names)
    """Fields this host's source does not provide (e.g. a legacy Java collector has no
    load average). Their values are placeholders and are left out of the flat metrics."""

    @property
    def temperature_max_celsius(self) -> float | None:
        """The hottest sensor, or None when the host has no sensors."""
        return max((t.celsius for t in self.temperatures), default=None)

    @property
    def disk_used_percent_max(self) -> float | None:
        """The fullest mount, or None when no mount was read."""
        return max((d.used_percent for d in self.disks), default=None)


@frozen(kw_only=True)
class ContainerSample:
    """One reading of one Docker container. Stopped containers carry no resource figures."""

    id: str = field(validator=_non_empty)
    name: str = field(validator=_non_empty)
    image: str = ""
    labels: dict[str, str] = field(factory=dict)
    state: str = "running"
    health: str | None = None
    restart_count: int | None = field(default=0, validator=_nn)
    """Restarts since the container was created; ``None`` when the source does not report
    it (the legacy Java collector), never a placeholder 0."""
    started_at: datetime | None = field(default=None, validator=_aware)
    finished_at: datetime | None = field(default=None, validator=_aware)
    exit_code: int | None = None
    cpu_percent: float | None = field(default=None, validator=_nn)
    cpu_limit_cores: float | None = field(default=None, validator=_nn)
    cpu_throttled_percent: float | None = field(default=None, validator=_nn)
    cpu_throttled_seconds_per_s: float | None = field(default=None, validator=_nn)
    memory_working_set_bytes: int | None = field(default=None, validator=_nn)
    memory_limit_bytes: int | None = field(default=None, validator=_nn)
    memory_percent: float | None = field(default=None, validator=_nn)
    net_rx_bytes_per_s: float | None = field(default=None, validator=_nn)
    net_tx_bytes_per_s: float | None = field(default=None, validator=_nn)
    block_read_bytes_per_s: float | None = field(default=None, validator=_nn)
    block_write_bytes_per_s: float | None = field(default=None, validator=_nn)
    pids: int | None = field(default=None, validator=_nn)

    @property
    def compose_project(self) -> str | None:
        return self.labels.get(COMPOSE_PROJECT_LABEL)

    @property
    def compose_service(self) -> str | None:
        return self.labels.get(COMPOSE_SERVICE_LABEL)


@frozen(kw_only=True)
class AgentStats:
    """The collector's own figures, so operators can see the monitor's cost and health."""

    collect_seconds: float = field(default=0.0, validator=_nn)
    queue_depth: int = field(default=0, validator=_nn)
    dropped_batches: int = field(default=0, validator=_nn)
    delivery_errors: int = field(default=0, validator=_nn)
    container_source: str = "cgroup"
    """Where container figures came from: ``cgroup``, ``docker-api`` (fallback), ``none``."""


@frozen(kw_only=True)
class Batch:
    """The envelope: everything one collector read of one host at one instant."""

    schema_version: int = SCHEMA_VERSION
    host_id: str = field(validator=_non_empty)
    hostname: str
    timestamp: datetime = field(validator=_aware)
    interval_seconds: float = field(default=1.0, validator=_nn)
    host: HostSample | None = None
    containers: tuple[ContainerSample, ...] = ()
    agent: AgentStats = field(factory=AgentStats)


def host_key(host_id: str) -> str:
    """The machine key of a host: its stable host id."""
    return host_id


def container_key(host_id: str, container_name: str) -> str:
    """The machine key of a container: ``<host_id>:<name>``.

    Keyed by name, not by container id, so a re-created container keeps its history
    and its alerts. Docker names never contain ``:``.
    """
    return f"{host_id}:{container_name}"
