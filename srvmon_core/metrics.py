"""The flat metric namespace: the names rules, series, the dashboard and /metrics use.

A sample flattens into ``{metric name: value}``. Absent figures (no rate yet, a stopped
container) are left out, never reported as 0. This table is the single source of metric
names; docs/metrics.md documents each one and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs
from attrs import frozen

from srvmon_core.schema import ContainerSample, HostSample

Kind = Literal["host", "container"]


@frozen(kw_only=True)
class Metric:
    name: str
    kind: Kind
    unit: str
    help: str


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


_HOST: dict[str, tuple[str, str, Callable[[HostSample], float | None]]] = {
    "cpu_percent": (
        "percent",
        "CPU busy time of the whole machine, 0-100",
        lambda s: s.cpu_percent,
    ),
    "cpu_iowait_percent": ("percent", "CPU time waiting for IO", lambda s: s.cpu_iowait_percent),
    "cpu_steal_percent": (
        "percent",
        "CPU time stolen by the hypervisor",
        lambda s: s.cpu_steal_percent,
    ),
    "load_1": ("load", "1-minute load average", lambda s: s.load_1),
    "load_5": ("load", "5-minute load average", lambda s: s.load_5),
    "load_15": ("load", "15-minute load average", lambda s: s.load_15),
    "memory_used_bytes": ("bytes", "memory in use", lambda s: s.memory_used_bytes),
    "memory_available_bytes": ("bytes", "memory available", lambda s: s.memory_available_bytes),
    "memory_percent": ("percent", "memory in use, 0-100", lambda s: s.memory_percent),
    "swap_percent": ("percent", "swap in use, 0-100", lambda s: s.swap_percent),
    "disk_used_percent_max": (
        "percent",
        "the fullest mount, 0-100",
        lambda s: s.disk_used_percent_max,
    ),
    "disk_read_bytes_per_s": (
        "bytes/s",
        "read from physical disks",
        lambda s: s.disk_read_bytes_per_s,
    ),
    "disk_write_bytes_per_s": (
        "bytes/s",
        "written to physical disks",
        lambda s: s.disk_write_bytes_per_s,
    ),
    "disk_read_ops_per_s": (
        "ops/s",
        "read operations on physical disks",
        lambda s: s.disk_read_ops_per_s,
    ),
    "disk_write_ops_per_s": (
        "ops/s",
        "write operations on physical disks",
        lambda s: s.disk_write_ops_per_s,
    ),
    "net_rx_bytes_per_s": (
        "bytes/s",
        "received, all interfaces but loopback",
        lambda s: _sum([n.rx_bytes_per_s for n in s.net if n.interface != "lo"]),
    ),
    "net_tx_bytes_per_s": (
        "bytes/s",
        "sent, all interfaces but loopback",
        lambda s: _sum([n.tx_bytes_per_s for n in s.net if n.interface != "lo"]),
    ),
    "net_errors_per_s": (
        "errors/s",
        "rx+tx errors, all interfaces",
        lambda s: _sum([n.rx_errors_per_s for n in s.net] + [n.tx_errors_per_s for n in s.net]),
    ),
    "net_drops_per_s": (
        "drops/s",
        "rx+tx drops, all interfaces",
        lambda s: _sum([n.rx_drops_per_s for n in s.net] + [n.tx_drops_per_s for n in s.net]),
    ),
    "temperature_max_celsius": (
        "celsius",
        "the hottest sensor",
        lambda s: s.temperature_max_celsius,
    ),
    "uptime_seconds": ("seconds", "time since boot", lambda s: s.uptime_seconds),
    "process_count": ("processes", "processes on the host", lambda s: s.process_count),
}

_CONTAINER: dict[str, tuple[str, str, Callable[[ContainerSample], float | None]]] = {
    "cpu_percent": (
        "percent",
        "CPU use, 100 = one core (as docker stats)",
        lambda c: c.cpu_percent,
    ),
    "cpu_throttled_percent": (
        "percent",
        "share of CFS periods throttled",
        lambda c: c.cpu_throttled_percent,
    ),
    "memory_working_set_bytes": (
        "bytes",
        "usage minus inactive file cache (as docker stats)",
        lambda c: c.memory_working_set_bytes,
    ),
    "memory_percent": ("percent", "working set over the limit, 0-100", lambda c: c.memory_percent),
    "net_rx_bytes_per_s": ("bytes/s", "received", lambda c: c.net_rx_bytes_per_s),
    "net_tx_bytes_per_s": ("bytes/s", "sent", lambda c: c.net_tx_bytes_per_s),
    "block_read_bytes_per_s": (
        "bytes/s",
        "read from block devices",
        lambda c: c.block_read_bytes_per_s,
    ),
    "block_write_bytes_per_s": (
        "bytes/s",
        "written to block devices",
        lambda c: c.block_write_bytes_per_s,
    ),
    "pids": ("processes", "processes and threads in the container", lambda c: c.pids),
    "restart_count": (
        "restarts",
        "restarts since the container was created",
        lambda c: c.restart_count,
    ),
}

METRICS: tuple[Metric, ...] = tuple(
    [Metric(name=n, kind="host", unit=u, help=h) for n, (u, h, _) in _HOST.items()]
    + [Metric(name=n, kind="container", unit=u, help=h) for n, (u, h, _) in _CONTAINER.items()]
)
"""Every flat metric, for docs, validation and the Prometheus exposition."""

HOST_METRIC_NAMES = frozenset(_HOST)
CONTAINER_METRIC_NAMES = frozenset(_CONTAINER)


def _present_fields_reader(cls: type, names: tuple[str, ...]) -> Callable[[Any], dict[str, float]]:
    """A function reading the fields ``names`` of a ``cls`` instance into ``{name: float}``,
    leaving out those that are ``None``.

    Straight-line code generated once, as attrs generates ``__init__``: it runs for every
    machine of every batch (31,000 times a second at 1,000 hosts x 30 containers), and is
    about five times as fast as a loop over the names (one attribute read and one test per
    field, no iterator, no call for a value that is already a float).
    """
    fields = attrs.fields_dict(cls)
    lines = ["def read(sample):", "    out = {}"]
    for name in names:
        if name not in fields:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        lines += [
            f"    v = sample.{name}",
            "    if v is not None:",
            f"        out[{name!r}] = v if v.__class__ is float else float(v)",
        ]
    lines.append("    return out")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)
    reader: Callable[[Any], dict[str, float]] = namespace["read"]
    return reader


_HOST_FIELDS: tuple[str, ...] = tuple(n for n in _HOST if n in attrs.fields_dict(HostSample))
"""Host metrics that are plain fields of HostSample."""
_HOST_DERIVED = tuple((n, get) for n, (_, _, get) in _HOST.items() if n not in _HOST_FIELDS)
_read_host_fields = _present_fields_reader(HostSample, _HOST_FIELDS)
_read_container_fields = _present_fields_reader(ContainerSample, tuple(_CONTAINER))
"""Every container metric is a plain field of ContainerSample (checked as it is built)."""


def host_metrics(sample: HostSample) -> dict[str, float]:
    """Flatten a host sample; figures that are absent or not collected are left out."""
    out = _read_host_fields(sample)
    for name, get in _HOST_DERIVED:
        value = get(sample)
        if value is not None:
            out[name] = float(value)
    for name in sample.not_collected:
        out.pop(name, None)
    return out


def container_metrics(sample: ContainerSample) -> dict[str, float]:
    """Flatten a container sample; figures that are absent are left out."""
    return _read_container_fields(sample)
