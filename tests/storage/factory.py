"""Batches with known values for storage tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from srvmon_core.alert_state import AlertEvent
from srvmon_core.schema import Batch, ContainerSample, HostSample
from srvmon_server.storage import Storage
from srvmon_server.storage.settle import raw_rows

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def host_sample(cpu: float, memory_percent: float = 40.0) -> HostSample:
    return HostSample(
        cpu_percent=cpu,
        load_1=1.0,
        load_5=0.5,
        load_15=0.25,
        memory_total_bytes=8_000,
        memory_used_bytes=4_000,
        memory_available_bytes=4_000,
        memory_percent=memory_percent,
        uptime_seconds=100.0,
        process_count=42,
    )


def container(
    name: str, cpu: float | None, state: str = "running", **extra: object
) -> ContainerSample:
    return ContainerSample(
        id=f"id-{name}",
        name=name,
        image="srvmon-test/busybox:1",
        labels={"com.docker.compose.project": "room"},
        state=state,
        cpu_percent=cpu,
        memory_working_set_bytes=None if cpu is None else 1_000_000,
        **extra,  # type: ignore[arg-type]
    )


def batch(
    at: datetime,
    *,
    cpu: float = 10.0,
    containers: int = 2,
    host_id: str = "h1",
    container_cpu: float | None = None,
    stopped: bool = False,
) -> Batch:
    """A batch of host ``host_id`` and ``containers`` containers ``c0``…; ``stopped`` ones
    carry no resource figures. Container CPU is ``container_cpu`` or ``cpu + index``."""
    return Batch(
        host_id=host_id,
        hostname=f"{host_id}.room",
        timestamp=at,
        host=host_sample(cpu),
        containers=tuple(
            container(
                f"c{i}",
                None if stopped else (cpu + i if container_cpu is None else container_cpu),
                state="exited" if stopped else "running",
            )
            for i in range(containers)
        ),
    )


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def alert_event(at: datetime, *, value: float = 90.0, **fields: Any) -> AlertEvent:
    """A ``firing`` transition of rule ``cpu-high`` on ``h1`` at ``at``; ``fields`` override."""
    values: dict[str, Any] = {
        "fingerprint": "fp1",
        "kind": "firing",
        "rule_id": "cpu-high",
        "rule_name": "CPU high",
        "machine_key": "h1",
        "machine_kind": "host",
        "machine_name": "h1.room",
        "host_id": "h1",
        "metric": "cpu_percent",
        "level": "warning",
        "from_state": "pending",
        "to_state": "firing",
        "value": value,
        "threshold": 80.0,
        "started_at": at,
        "at": at,
        "silenced": False,
    }
    return AlertEvent(**(values | fields))


def raw(storage: Storage) -> sa.FromClause:
    """Every stored raw row: on SQLite the newest wait in ``samples_recent`` until they are
    moved into ``samples`` (``srvmon_server/storage/settle.py``)."""
    return raw_rows(storage.dialect)
