"""Helpers for tests of code that uses srvmon: a fake clock, an in-memory sink, sample
factories and (when Hypothesis is installed) strategies that generate valid samples.

Nothing here does I/O. Hypothesis is imported only when a strategy is asked for, so this
module imports with nothing but attrs and cattrs installed.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from attrs import define, field, fields

from srvmon_core.schema import (
    CONTAINER_NAME_PATTERN,
    HOST_ID_PATTERN,
    AgentStats,
    Batch,
    ContainerSample,
    DiskIO,
    DiskUsage,
    HostSample,
    NetIO,
    Temperature,
)

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
"""Where a FakeClock starts unless told otherwise."""


@define
class FakeClock:
    """A clock that moves only when told to.

    ``now()`` is an aware UTC datetime, ``time()`` the same instant as epoch seconds.
    """

    _now: datetime = field(default=DEFAULT_START, alias="start")

    def __attrs_post_init__(self) -> None:
        if self._now.utcoffset() is None:
            raise ValueError("FakeClock start must carry a time zone")

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        """Move the clock forward; time never goes backwards."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back, got advance({seconds!r})")
        self._now += timedelta(seconds=seconds)


@define
class InMemorySink:
    """A sink that keeps every batch sent to it, in order, in ``batches``."""

    batches: list[Batch] = field(factory=list)

    def send(self, batch: Batch) -> None:
        self.batches.append(batch)

    def clear(self) -> None:
        self.batches.clear()


def make_host_sample(**overrides: Any) -> HostSample:
    """A plausible, valid host sample; keyword arguments replace any field."""
    values: dict[str, Any] = {
        "cpu_percent": 12.5,
        "cpu_per_core_percent": (10.0, 15.0),
        "cpu_iowait_percent": 0.5,
        "load_1": 0.5,
        "load_5": 0.4,
        "load_15": 0.3,
        "memory_total_bytes": 8 * 2**30,
        "memory_used_bytes": 2 * 2**30,
        "memory_available_bytes": 6 * 2**30,
        "memory_percent": 25.0,
        "disks": (
            DiskUsage(
                mount="/",
                device="sda1",
                fstype="ext4",
                total_bytes=100 * 2**30,
                used_bytes=40 * 2**30,
                used_percent=40.0,
            ),
        ),
        "disk_io": (DiskIO(device="sda", read_bytes_per_s=4096.0, write_bytes_per_s=8192.0),),
        "disk_read_bytes_per_s": 4096.0,
        "disk_write_bytes_per_s": 8192.0,
        "net": (NetIO(interface="eth0", rx_bytes_per_s=1000.0, tx_bytes_per_s=500.0),),
        "temperatures": (Temperature(sensor="coretemp/Package id 0", celsius=48.0),),
        "uptime_seconds": 86_400.0,
        "process_count": 180,
    }
    values.update(overrides)
    return HostSample(**values)


def make_container_sample(**overrides: Any) -> ContainerSample:
    """A plausible, valid running container sample; keyword arguments replace any field."""
    values: dict[str, Any] = {
        "id": "3f2a9c1b7d4e",
        "name": "web",
        "image": "srvmon-test/busybox:1",
        "labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"},
        "started_at": datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
        "cpu_percent": 3.5,
        "memory_working_set_bytes": 64 * 2**20,
        "memory_limit_bytes": 256 * 2**20,
        "memory_percent": 25.0,
        "net_rx_bytes_per_s": 100.0,
        "net_tx_bytes_per_s": 50.0,
        "block_read_bytes_per_s": 0.0,
        "block_write_bytes_per_s": 512.0,
        "pids": 4,
    }
    values.update(overrides)
    return ContainerSample(**values)


def make_batch(**overrides: Any) -> Batch:
    """A valid batch of one host and one container; keyword arguments replace any field."""
    values: dict[str, Any] = {
        "host_id": "host-1",
        "hostname": "host-1.example",
        "timestamp": DEFAULT_START,
        "host": make_host_sample(),
        "containers": (make_container_sample(),),
        "agent": AgentStats(collect_seconds=0.01),
    }
    values.update(overrides)
    return Batch(**values)


def _hypothesis() -> Any:
    try:
        return importlib.import_module("hypothesis.strategies")
    except ImportError:
        raise ImportError(
            "srvmon_core.testing strategies need Hypothesis: pip install hypothesis"
        ) from None


_INT_MAX = 2**63 - 1


def _rates(st: Any) -> Any:
    return st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False)


def _non_negative(st: Any) -> Any:
    return st.floats(min_value=0, allow_nan=False, allow_infinity=False)


def _counts(st: Any) -> Any:
    return st.integers(min_value=0, max_value=_INT_MAX)


def _aware_datetimes(st: Any) -> Any:
    zones = st.sampled_from(
        [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    )
    return st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=zones
    )


def host_samples() -> Any:
    """A Hypothesis strategy of valid HostSamples (needs Hypothesis)."""
    st = _hypothesis()
    finite = st.floats(allow_nan=False, allow_infinity=False)
    disk = st.builds(
        DiskUsage,
        mount=st.text(),
        device=st.text(),
        fstype=st.text(),
        total_bytes=_counts(st),
        used_bytes=_counts(st),
        used_percent=_non_negative(st),
    )
    disk_io = st.builds(
        DiskIO,
        device=st.text(),
        read_bytes_per_s=_rates(st),
        write_bytes_per_s=_rates(st),
        read_ops_per_s=_rates(st),
        write_ops_per_s=_rates(st),
    )
    net = st.builds(
        NetIO,
        interface=st.text(),
        rx_bytes_per_s=_rates(st),
        tx_bytes_per_s=_rates(st),
        rx_errors_per_s=_rates(st),
        tx_errors_per_s=_rates(st),
        rx_drops_per_s=_rates(st),
        tx_drops_per_s=_rates(st),
    )
    temperature = st.builds(
        Temperature,
        sensor=st.text(),
        celsius=finite,
        high_celsius=st.none() | finite,
        critical_celsius=st.none() | finite,
    )
    field_names = [a.name for a in fields(HostSample)]
    return st.builds(
        HostSample,
        cpu_percent=_non_negative(st),
        cpu_per_core_percent=st.lists(_non_negative(st), max_size=4).map(tuple),
        cpu_iowait_percent=_rates(st),
        cpu_steal_percent=_rates(st),
        load_1=_non_negative(st),
        load_5=_non_negative(st),
        load_15=_non_negative(st),
        memory_total_bytes=_counts(st),
        memory_used_bytes=_counts(st),
        memory_available_bytes=_counts(st),
        memory_percent=_non_negative(st),
        swap_total_bytes=_counts(st),
        swap_used_bytes=_counts(st),
        swap_percent=_non_negative(st),
        disks=st.lists(disk, max_size=3).map(tuple),
        disk_io=st.lists(disk_io, max_size=3).map(tuple),
        disk_read_bytes_per_s=_rates(st),
        disk_write_bytes_per_s=_rates(st),
        disk_read_ops_per_s=_rates(st),
        disk_write_ops_per_s=_rates(st),
        net=st.lists(net, max_size=3).map(tuple),
        temperatures=st.lists(temperature, max_size=3).map(tuple),
        uptime_seconds=_non_negative(st),
        process_count=_counts(st),
        not_collected=st.lists(st.sampled_from(field_names), unique=True, max_size=3).map(tuple),
    )


def _printable(st: Any, max_size: int, min_size: int = 0) -> Any:
    """Text without control or line-separator characters (what names may hold)."""
    return st.text(
        st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn", "Zs")),
        min_size=min_size,
        max_size=max_size,
    )


def _ids(st: Any, pattern: Any) -> Any:
    return st.from_regex(pattern, fullmatch=True)


def container_samples() -> Any:
    """A Hypothesis strategy of valid ContainerSamples (needs Hypothesis)."""
    st = _hypothesis()
    return st.builds(
        ContainerSample,
        id=_printable(st, 64, min_size=1),
        name=_ids(st, CONTAINER_NAME_PATTERN),
        image=_printable(st, 64),
        labels=st.dictionaries(st.text(min_size=1, max_size=20), st.text(), max_size=3),
        state=st.sampled_from(["running", "exited", "paused", "restarting", "created"]),
        health=st.none() | st.sampled_from(["healthy", "unhealthy", "starting"]),
        restart_count=st.none() | _counts(st),
        started_at=st.none() | _aware_datetimes(st),
        finished_at=st.none() | _aware_datetimes(st),
        exit_code=st.none() | st.integers(min_value=-(2**63), max_value=_INT_MAX),
        cpu_percent=_rates(st),
        cpu_limit_cores=_rates(st),
        cpu_throttled_percent=_rates(st),
        cpu_throttled_seconds_per_s=_rates(st),
        memory_working_set_bytes=st.none() | _counts(st),
        memory_limit_bytes=st.none() | _counts(st),
        memory_percent=_rates(st),
        net_rx_bytes_per_s=_rates(st),
        net_tx_bytes_per_s=_rates(st),
        block_read_bytes_per_s=_rates(st),
        block_write_bytes_per_s=_rates(st),
        pids=st.none() | _counts(st),
    )


def agent_stats() -> Any:
    """A Hypothesis strategy of valid AgentStats (needs Hypothesis)."""
    st = _hypothesis()
    return st.builds(
        AgentStats,
        collect_seconds=_non_negative(st),
        queue_depth=_counts(st),
        dropped_batches=_counts(st),
        delivery_errors=_counts(st),
        container_source=st.sampled_from(["cgroup", "docker-api", "none"]),
    )


def batches() -> Any:
    """A Hypothesis strategy of valid Batches (needs Hypothesis)."""
    st = _hypothesis()
    return st.builds(
        Batch,
        host_id=_ids(st, HOST_ID_PATTERN),
        hostname=_printable(st, 64),
        timestamp=_aware_datetimes(st),
        interval_seconds=_non_negative(st),
        host=st.none() | host_samples(),
        containers=st.lists(container_samples(), max_size=4).map(tuple),
        agent=agent_stats(),
    )
