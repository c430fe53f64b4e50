"""Schema invariants: validation at construction, the flat metric namespace."""

from datetime import UTC, datetime

import pytest

from srvmon_core import (
    Batch,
    ContainerSample,
    DiskUsage,
    HostSample,
    container_metrics,
    host_metrics,
)

pytestmark = pytest.mark.core


def _host(**kw: object) -> HostSample:
    base: dict[str, object] = dict(
        cpu_percent=12.5,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        memory_total_bytes=8_000,
        memory_used_bytes=2_000,
        memory_available_bytes=6_000,
        memory_percent=25.0,
    )
    base.update(kw)
    return HostSample(**base)  # type: ignore[arg-type]


def test_negative_rate_is_rejected() -> None:
    """A counter reset must never surface as a negative rate."""
    with pytest.raises(ValueError, match="disk_read_bytes_per_s"):
        _host(disk_read_bytes_per_s=-1.0)


def test_nan_is_rejected() -> None:
    with pytest.raises(ValueError, match="cpu_percent"):
        _host(cpu_percent=float("nan"))


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        Batch(host_id="h", hostname="h", timestamp=datetime(2026, 1, 1))


def test_absent_rates_are_left_out_of_flat_metrics() -> None:
    """The first sample of a counter has no rate: absent, not 0."""
    flat = host_metrics(
        _host(
            disks=(
                DiskUsage(
                    mount="/",
                    device="sda1",
                    fstype="ext4",
                    total_bytes=100,
                    used_bytes=91,
                    used_percent=91.0,
                ),
            )
        )
    )
    assert "disk_read_bytes_per_s" not in flat
    assert flat["disk_used_percent_max"] == 91.0
    assert flat["cpu_percent"] == 12.5


def test_stopped_container_has_no_resource_metrics() -> None:
    c = ContainerSample(
        id="abc",
        name="web",
        state="exited",
        exit_code=137,
        restart_count=2,
        labels={"com.docker.compose.project": "shop"},
        finished_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert container_metrics(c) == {"restart_count": 2.0}
    assert c.compose_project == "shop"
